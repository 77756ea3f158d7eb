"""bench/webhook.py, in miniature: a few signed texts to Tend's real app and to the bare
endpoint, each under uvicorn in a process of its own, on SQLite. The run itself checks
that every request was answered 200 with TwiML and left a matched, answered reply."""

from __future__ import annotations

import math

from bench import webhook


def test_a_tiny_run_produces_figures() -> None:
    args = webhook.options(
        ["--requests", "50", "--warmup", "10", "--rounds", "1", "--connections", "4",
         "--rate", "40", "--seconds", "0.25", "--pool", "4", "--people", "5",
         "--sqlite-only", "--no-write", "--in-process"]
    )  # fmt: skip
    (result,), body = webhook.run(args)
    assert result.database == "SQLite"
    assert result.tend_rate > 0
    assert result.bare_rate > 0
    assert result.replies == 10 + 50 + 10  # warm-up, one run, the steady rate
    assert result.check_ins > 0
    assert all(math.isfinite(value) and value > 0 for value in result.latency)
    assert "## Inbound SMS webhook" in body
    assert "| SQLite |" in body
