"""One of Tend's processes as the harness runs it: `python -m tests.reliability.proc
web|scheduler|worker --clock PATH`.

It is `tend web`, `tend scheduler` or `tend worker` (settings from the TEND_ variables,
the same logging, the same `service.processes` entry points), with one difference:
the runtime's clock is the harness's shared clock, so a test can run time fast or make
it jump.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from service import processes
from service.logging import configure_logging
from service.runtime import Runtime
from service.settings import load_settings
from tests.support.clock import SharedClock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["web", "scheduler", "worker"])
    parser.add_argument("--clock", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    settings = load_settings()
    configure_logging(settings.effective_log_format, settings.log_level)
    runtime = Runtime.build(settings, clock=SharedClock(args.clock))
    if args.role == "web":
        processes.run_web(runtime)
    elif args.role == "scheduler":
        processes.run_scheduler(runtime)
    else:
        processes.run_worker(runtime, threads=args.threads)


if __name__ == "__main__":
    main()
