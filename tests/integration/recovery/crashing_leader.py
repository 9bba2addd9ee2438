"""A recovery process that SIGKILLs itself right after a chosen step is recorded (a leader dying
mid-failover). `python -m tests.integration.recovery.crashing_leader --config F --crash-after PREFIX`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from libs.config import load_settings
from libs.recovery.audit import RecoveryRecord
from services.recovery.service import RecoveryService


async def run(config: str, crash_after: str, node: str) -> None:
    settings = load_settings(config)

    async def die_after(step: str, record: RecoveryRecord) -> None:
        if step.startswith(crash_after):
            os.kill(os.getpid(), signal.SIGKILL)

    service = await RecoveryService(settings, node=node, after_step=die_after).start()
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--crash-after", required=True)
    parser.add_argument("--node", default="crasher")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s crasher %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args.config, args.crash_after, args.node))


if __name__ == "__main__":
    main()
