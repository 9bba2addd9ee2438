"""asyncio helpers every service needs to stop reliably (Python 3.11).

Stopping a task: `task.cancel()` followed by `with suppress(CancelledError): await task` has two flaws:
if the task's code swallows one cancellation somewhere deep (a library awaiting a cancelled task under
`suppress(CancelledError)` does), the task runs on and the await hangs forever; and the suppress also
swallows a cancellation aimed at the *caller*. `cancel_and_wait` re-cancels until the task is done and
lets the caller's own cancellation through.

A cancellation lost by a library: on 3.11, `asyncio.wait_for` returns the result instead of raising
CancelledError when the awaited operation completes in the same loop iteration as the cancel
(gh-86296, fixed in 3.12). nats-py's request/publish-with-ack uses `wait_for`, so a task cancelled at
shutdown while an ack arrives keeps running. Long-running loops call `checkpoint()` after such awaits:
the task still knows it was asked to stop (`cancelling()`), so the lost CancelledError is raised again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None, *, retry_s: float = 0.2) -> None:
    """Cancel `task` and wait until it has really finished; its own failure is not re-raised."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.exception()  # retrieved: a failure at shutdown is not news


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*(cancel_and_wait(t) for t in tasks))


def checkpoint() -> None:
    """Raise CancelledError if the current task was asked to cancel but is still running."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
