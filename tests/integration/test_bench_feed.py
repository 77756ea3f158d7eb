"""bench/feed.py, in miniature: two weeks of occurrences in one participant's feed, a few
full renders and 304s from Tend's real app and from the bare endpoint, each under
uvicorn, on SQLite. The run itself checks that every full answer holds every event and
every conditional one is a 304 with the feed's ETag."""

from __future__ import annotations

import math

from bench import feed


def test_a_tiny_run_produces_figures() -> None:
    args = feed.options(
        ["--days", "14", "--renders", "5", "--warmup", "2", "--local", "3",
         "--requests", "40", "--warmup304", "10", "--rounds", "1", "--connections", "4",
         "--sqlite-only", "--no-write", "--in-process"]
    )  # fmt: skip
    (result,), body = feed.run(args)
    assert result.database == "SQLite"
    assert result.events == 14 * 2
    assert result.feed_bytes > 0
    assert len(result.full_ms) == 5
    assert all(math.isfinite(value) and value > 0 for value in result.full_ms)
    assert result.tend_rate > 0
    assert result.bare_rate > 0
    assert len(result.local.not_modified_ms) == 3
    assert set(result.local.steps_ms) == set(feed.STEPS)
    assert "## Calendar feed" in body
    assert "| SQLite |" in body
