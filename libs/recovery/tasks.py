"""A recovery task that dies must say so, with its traceback (issue 17: fail closed, fail loudly).

A background task (`asyncio.create_task`) that raises keeps its exception to itself until someone
awaits it, which for the leader's helpers (fencing, retries, seeding, sweeps) is only at the end of the
term: meanwhile that duty silently stops. `log_crash` is the done-callback that logs the exception at
ERROR with its traceback the moment the task ends; cancellation and the expected ends of a term
(`quiet`: LeadershipLost, RecoveryPaused) are not news.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any


def crash_of(task: asyncio.Task[Any], quiet: tuple[type[BaseException], ...] = ()) -> BaseException | None:
    """The exception a finished task died of; None when it returned, was cancelled or ended `quiet`ly."""
    if not task.done() or task.cancelled():
        return None
    exc = task.exception()
    if exc is None or isinstance(exc, quiet):
        return None
    return exc


def log_crash(
    log: logging.Logger, what: str, quiet: tuple[type[BaseException], ...] = ()
) -> Callable[[asyncio.Task[Any]], None]:
    """A done-callback logging `what` crashed, with the exception's traceback."""

    def done(task: asyncio.Task[Any]) -> None:
        exc = crash_of(task, quiet)
        if exc is not None:
            log.error("%s crashed: %s: %s", what, type(exc).__name__, exc, exc_info=exc)

    return done
