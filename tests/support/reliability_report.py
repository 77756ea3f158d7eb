"""The reliability suite's summary table (a plugin of tests/conftest.py): the fault and
load tests add a row each to the `summary` fixture; at the end of the run
`TEND_RELIABILITY_REPORT=docs/reliability.md` rewrites the table there (and
test-artifacts/reliability.json).

Under pytest-xdist each worker hands its rows to the controller (`workeroutput`), which
merges them and writes the table once, the rows in the order of the tests in their files,
as a run in one process writes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.reliability.checks import Tally

BEGIN = "<!-- reliability-table:begin -->"
END = "<!-- reliability-table:end -->"
_OUTPUT = "tend_reliability_summary"


@dataclass
class Summary:
    rows: list[dict[str, object]] = field(default_factory=list)
    log_lines: int = 0
    position: tuple[str, int] = ("", 0)  # the running test's file and line: the rows' order
    order: list[tuple[tuple[str, int], int]] = field(default_factory=list)

    def add(self, fault: str, injected: int, tally: Tally) -> None:
        self.order.append((self.position, len(self.rows)))
        self.rows.append({"fault": fault, "injected": injected, **tally.row()})

    def dump(self) -> str:
        return json.dumps({"rows": self.rows, "order": self.order, "log_lines": self.log_lines})

    def merge(self, dumped: str) -> None:
        data = json.loads(dumped)
        base = len(self.rows)
        self.rows.extend(data["rows"])
        self.order.extend(((str(f), int(n)), base + int(i)) for (f, n), i in data["order"])
        self.log_lines += int(data["log_lines"])

    def ordered(self) -> list[dict[str, object]]:
        return [self.rows[i] for _, i in sorted(self.order)]

    def markdown(self) -> str:
        rows = self.ordered()
        head = (
            "| fault | injected | due | sent | failed | expired | cancelled "
            "| messages checked | duplicates | lost | after opt-out |\n"
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        )
        lines = [
            f"| {r['fault']} | {r['injected']} | {r['due']} | {r['sent']} | {r['failed']} "
            f"| {r['expired']} | {r['cancelled']} | {r['messages']} | {r['duplicates']} "
            f"| {r['lost']} | {r['after_opt_out']} |"
            for r in rows
        ]
        total = {
            key: sum(int(r[key]) for r in rows)  # type: ignore[call-overload]
            for key in ("injected", "due", "messages", "duplicates", "lost", "after_opt_out")
        }
        lines.append(
            f"| **all {len(rows)} runs** | {total['injected']} | {total['due']} | | | | "
            f"| {total['messages']} | {total['duplicates']} | {total['lost']} "
            f"| {total['after_opt_out']} |"
        )
        tail = f"\n\nLog lines checked for unmasked phone numbers and email addresses: {self.log_lines:,}, none found.\n"
        return head + "\n".join(lines) + tail

    def write(self, target: Path) -> None:
        if not self.rows:
            return
        Path("test-artifacts").mkdir(exist_ok=True)
        Path("test-artifacts/reliability.json").write_text(json.dumps(self.ordered(), indent=2))
        doc = target.read_text()
        if BEGIN in doc and END in doc:
            before, rest = doc.split(BEGIN, 1)
            after = rest.split(END, 1)[1]
            target.write_text(f"{before}{BEGIN}\n{self.markdown()}{END}{after}")


_summary_key = pytest.StashKey[Summary]()


def _summary(config: pytest.Config) -> Summary:
    if _summary_key not in config.stash:
        config.stash[_summary_key] = Summary()
    return config.stash[_summary_key]


@pytest.fixture(scope="session")
def summary(pytestconfig: pytest.Config) -> Summary:
    return _summary(pytestconfig)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    path, line, _ = item.location
    _summary(item.config).position = (path, line or 0)
    yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    found = _summary(config)
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes
        workeroutput[_OUTPUT] = found.dump()
        return
    target = os.environ.get("TEND_RELIABILITY_REPORT")
    if target:
        found.write(Path(target))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    dumped = getattr(node, "workeroutput", {}).get(_OUTPUT)
    if dumped:
        _summary(node.config).merge(dumped)
