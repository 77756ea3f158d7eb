"""The layering rule of service/core/__init__.py: the core does no I/O and imports nothing
from the rest of `service`. Checked on the source (AST), including imports inside
functions and `if TYPE_CHECKING:` blocks, so it stays true as the core grows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "service" / "core"

# Modules that talk to the outside world: databases, brokers, the network, processes.
FORBIDDEN_ROOTS = {
    "sqlalchemy", "alembic", "psycopg", "psycopg2", "sqlite3", "redis", "dramatiq",
    "httpx", "requests", "urllib3", "aiohttp", "smtplib", "socket", "ssl", "subprocess",
    "asyncio", "threading", "multiprocessing", "fastapi", "starlette", "uvicorn", "twilio",
    "urllib.request", "http.client", "http.server", "shutil", "tempfile",
    "service.settings", "service.logging", "service.catalog", "service.cli",
}  # fmt: skip


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, absolute, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = "service.core"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, str(node.args[0].value)))
    return found


CORE_FILES = sorted(CORE.glob("*.py"))


def test_the_core_has_modules() -> None:
    names = {p.stem for p in CORE_FILES}
    assert {"loader", "expand", "render", "sms", "timeexpr", "plan", "ical", "preview"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_imports_only_the_core(path: Path) -> None:
    bad = []
    for line, module in _imports(path):
        if module.startswith("service") and not (
            module == "service.core" or module.startswith("service.core.")
        ):
            bad.append(f"{path.name}:{line}: imports {module}")
        if any(module == root or module.startswith(root + ".") for root in FORBIDDEN_ROOTS):
            bad.append(f"{path.name}:{line}: imports {module}, which does I/O")
    assert bad == []


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_does_not_open_files_or_read_the_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in {"open", "input", "print"}:
                bad.append(f"{path.name}:{node.lineno}: calls {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in {"now", "utcnow", "today", "time"}:
                owner = func.value
                name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if name in {"datetime", "date", "time"}:
                    bad.append(f"{path.name}:{node.lineno}: reads the clock ({name}.{func.attr})")
            if isinstance(func, ast.Attribute) and func.attr in {
                "getenv",
                "read_text",
                "write_text",
            }:
                bad.append(f"{path.name}:{node.lineno}: calls .{func.attr}()")
        if isinstance(node, ast.Attribute) and node.attr == "environ":
            bad.append(f"{path.name}:{node.lineno}: reads the environment")
    assert bad == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import socket\nfrom ..settings import Settings\nfrom . import plan\n"
        "def f():\n    from service.storage import participants\n    __import__('httpx')\n"
    )
    assert _imports(sample) == [
        (1, "socket"),
        (2, "service.settings"),
        (2, "service.settings.Settings"),
        (3, "service.core"),
        (3, "service.core.plan"),
        (5, "service.storage"),
        (5, "service.storage.participants"),
        (6, "httpx"),
    ]
