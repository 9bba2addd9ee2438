"""Honouring a cancellation that a library swallowed (Python 3.11).

On 3.11, `asyncio.wait_for` returns the result instead of raising CancelledError when the awaited
operation completes in the same loop iteration as the cancel (gh-86296, fixed in 3.12). nats-py's
request/publish-with-ack uses `wait_for`, so a task cancelled at shutdown while an ack arrives keeps
running — and a TaskGroup waiting for it hangs forever (seen in the tests). Long-running loops call
`checkpoint()` after such awaits: the task still knows it was asked to stop (`cancelling()`), so we
raise the CancelledError that was lost. Our own waits use `asyncio.timeout`, which is not affected.
"""

from __future__ import annotations

import asyncio


def checkpoint() -> None:
    """Raise CancelledError if the current task was asked to cancel but is still running."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
