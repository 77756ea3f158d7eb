"""Writing benchmark figures into docs/benchmarks.md, one section per benchmark.

Each benchmark owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
and replaces only that, so benchmarks can be run one at a time.
"""

from __future__ import annotations

import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

HEADER = """# Benchmarks

Every figure is a ratio to a baseline measured in the same run on the same machine, so
that the numbers mean the same on a laptop and in CI. Run them all with `make bench`, or
one with `make bench BENCHES=name`. Each section below is rewritten by its benchmark.
"""


def machine() -> str:
    return f"Python {sys.version.split()[0]} on {platform.machine()} ({platform.system()})"


def write_section(name: str, body: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"_Measured {stamp}, {machine()}._"
    block = f"<!-- bench:{name} -->\n{body.rstrip()}\n\n{footer}\n<!-- /bench:{name} -->"
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
