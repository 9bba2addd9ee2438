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
import signal
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


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


class Interrupted(Exception):
    """The program was asked to stop by a signal; what it started has been stopped (see
    `run_interruptible`). `exit_code` is the shell's convention, 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_interruptible(main: Coroutine[Any, Any, T], *, signals: Iterable[int] = STOP_SIGNALS) -> T:
    """`asyncio.run(main)`, where SIGINT, SIGTERM and SIGHUP cancel `main` instead of killing the process.

    With Python's default handlers, SIGTERM ends the interpreter at once: no `finally`, no `async with`
    exit, so the mariadbd and nats-server a program started (in sessions of their own, so the signal
    does not reach them) live on as orphans. Here the signal cancels the main task; its cleanup runs (a
    sandbox stops its nodes, a NatsServer its process) and then `Interrupted` is raised for the caller
    to exit with `exit_code`. A second signal while cleaning up cancels again (cleanup code that awaits
    must be short); the process still never dies with children left behind by the first signal."""
    got: list[int] = []

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            got.append(signum)
            if len(got) == 1:
                task.cancel()

        # remove_signal_handler resets a signal to SIG_DFL: what was installed before (a caller's
        # handler, such as the test suite's SIGTERM one) is put back afterwards instead.
        previous = {sig: signal.getsignal(sig) for sig in signals}
        for sig in signals:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await main
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    try:
        result = asyncio.run(guarded())
    except BaseException:
        if got:  # whatever the cancellation turned into on its way out
            raise Interrupted(got[0]) from None
        raise
    if got:  # `main` took the cancellation as a request to finish early
        raise Interrupted(got[0])
    return result
