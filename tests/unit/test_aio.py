"""`run_interruptible`: a signal cancels the main coroutine and surfaces as `Interrupted`; the handlers
installed before it are back afterwards (a caller's own SIGTERM handler must survive a sandbox CLI run)."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

import pytest

from libs.aio import Interrupted, run_interruptible


def _mine(signum: int, frame: FrameType | None) -> None:  # pragma: no cover - never delivered
    raise AssertionError("the caller's handler must not run while run_interruptible holds the signal")


def test_a_signal_cancels_main_and_the_previous_handler_is_restored() -> None:
    before = signal.signal(signal.SIGHUP, _mine)
    cleaned: list[bool] = []

    async def main() -> int:
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(30)
            return 1
        finally:
            cleaned.append(True)

    try:
        with pytest.raises(Interrupted) as stopped:
            run_interruptible(main(), signals=(signal.SIGHUP,))
        assert stopped.value.signum == signal.SIGHUP
        assert cleaned == [True]
        assert signal.getsignal(signal.SIGHUP) is _mine
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_finished_main_returns_its_result_and_restores_the_handler() -> None:
    before = signal.signal(signal.SIGHUP, _mine)

    async def main() -> int:
        return 7

    try:
        assert run_interruptible(main(), signals=(signal.SIGHUP,)) == 7
        assert signal.getsignal(signal.SIGHUP) is _mine
    finally:
        signal.signal(signal.SIGHUP, before)
