# Tend: `make run` runs it, `make test` tests it; each installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test test-fast reliability check fmt bench clean help browser

help:
	@echo "make demo   install, then run two simulated weeks and write an HTML report"
	@echo "make run    install, then run Tend on its embedded defaults (SQLite, in-process broker)"
	@echo "make test   install, then run the whole test suite (TEST_WORKERS=4 processes)"
	@echo "make test-fast  the unit tests alone (tests/unit: no database, network or subprocess)"
	@echo "make reliability  the fault tests alone; rewrites the table in docs/reliability.md"
	@echo "make check  ruff (lint and format), mypy --strict and the import layers"
	@echo "make bench  run the benchmarks and write docs/benchmarks.md (BENCHES=engine: one)"
	@echo "make fmt    format the code"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tend needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/tend run

demo: $(STAMP)
	$(BIN)/tend demo

# The suite runs on TEST_WORKERS pytest-xdist processes (more than the cores: many tests
# wait on clocks and subprocesses). TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 4
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

test: $(STAMP) browser
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

# The pure, fast tests alone: a few seconds' check while working.
test-fast: $(STAMP)
	$(BIN)/pytest -m unit tests/unit -q $(PYTEST_ARGS)

# The multi-process fault tests alone (they are part of `make test` too), writing their
# counts into docs/reliability.md.
reliability: $(STAMP)
	TEND_RELIABILITY_REPORT=docs/reliability.md $(BIN)/pytest $(XDIST) -m reliability tests/reliability $(PYTEST_ARGS)

# The dashboard's browser tests drive Debian's chromium (Playwright is told its path; no
# browser is downloaded). Installed here when missing and this is root; without it those
# tests skip, or under TEND_REQUIRE_SERVICES=1 (CI) fail.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y chromium || (apt-get update && apt-get install -y chromium) \
	      || echo "chromium could not be installed: the browser tests will not run"; \
	  else \
	    echo "chromium is not installed (as root: apt-get install chromium): the browser tests will not run"; \
	  fi; }

check: $(STAMP)
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench
	$(BIN)/mypy service
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix service tests bench
	$(BIN)/ruff format service tests bench

BENCHES ?= expand engine webhook feed publish load
bench: $(STAMP)
	@for name in $(BENCHES); do $(BIN)/python -m bench.$$name || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
