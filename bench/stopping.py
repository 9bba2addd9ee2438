"""How every benchmark runs its main coroutine: a signal stops what the bench started, then it exits.

`libs.aio.run_interruptible` turns SIGINT, SIGTERM and SIGHUP into a cancellation of the main task, so the
`finally` blocks run (sandboxes stop their mariadbd, NatsServers their nats-server, service subprocesses
get SIGTERM, `baton up` its sandbox) before the process exits with 128 + the signal number. Without it a
SIGTERM — a CI time limit, `timeout`, a scheduler — ends Python at once and leaves them all running.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from libs.aio import Interrupted, run_interruptible

T = TypeVar("T")


def run_bench(main: Coroutine[Any, Any, T], name: str) -> T:
    try:
        return run_interruptible(main)
    except Interrupted as exc:
        print(f"{name}: {exc}; every process it started is stopped", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
