"""A crashed recovery task is logged at once, with its traceback (issue 17, item 6)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from libs.errors import LeadershipLost
from libs.recovery.tasks import crash_of, log_crash

log = logging.getLogger("test.tasks")


async def _explode() -> None:
    await asyncio.sleep(0)
    raise ValueError("the sweep broke")


async def _lose() -> None:
    raise LeadershipLost("lease lost")


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_crash_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    task = asyncio.create_task(_explode(), name="open recoveries sweep")
    task.add_done_callback(log_crash(log, "recovery: open recoveries sweep"))
    with caplog.at_level(logging.ERROR, logger="test.tasks"):
        await asyncio.wait({task})
        await asyncio.sleep(0)  # done-callbacks run on the next loop iteration
    [record] = [r for r in caplog.records if r.name == "test.tasks"]
    assert record.levelno == logging.ERROR
    assert "open recoveries sweep crashed: ValueError: the sweep broke" in record.getMessage()
    assert record.exc_info is not None
    assert "_explode" in caplog.text and "Traceback" in caplog.text


async def test_quiet_ends_and_cancellation_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    lost = asyncio.create_task(_lose())
    lost.add_done_callback(log_crash(log, "lost", (LeadershipLost,)))
    cancelled = asyncio.create_task(_forever())
    cancelled.add_done_callback(log_crash(log, "cancelled"))
    with caplog.at_level(logging.DEBUG, logger="test.tasks"):
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.wait({lost, cancelled})
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.name == "test.tasks"]
    assert crash_of(lost, (LeadershipLost,)) is None and crash_of(cancelled) is None
    assert isinstance(crash_of(lost), LeadershipLost)  # not quiet unless said so
