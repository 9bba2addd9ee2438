from __future__ import annotations

import asyncio

from libs.aio import checkpoint


async def test_a_cancellation_swallowed_by_wait_for_still_ends_the_loop() -> None:
    """The ack and the cancel land in the same loop iteration: 3.11's wait_for returns the result."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    rounds = 0

    async def sender() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            await asyncio.wait_for(fut if rounds == 1 else asyncio.sleep(3600), 10)
            checkpoint()

    task = asyncio.create_task(sender())
    await asyncio.sleep(0.01)  # the task now waits on fut

    def both() -> None:
        fut.set_result(1)
        task.cancel()

    loop.call_soon(both)
    async with asyncio.timeout(2):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert rounds == 1


async def test_checkpoint_is_silent_when_nobody_cancelled() -> None:
    checkpoint()
