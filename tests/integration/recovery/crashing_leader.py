"""A recovery process that dies (SIGKILL) or pauses (SIGSTOP, until the test sends SIGCONT) right after a
chosen step is recorded: a leader dying or freezing mid-recovery.

    python -m tests.integration.recovery.crashing_leader --config F --crash-after PREFIX [--signal STOP]
    python -m tests.integration.recovery.crashing_leader --config F --plan FILE

With `--plan`, the process imports everything, then waits for FILE to appear before it starts (so a test
can start the next leader ahead of time); FILE holds `{"after": PREFIX, "signal": "KILL"|"STOP"}`.
It acts once, on the first step whose name starts with PREFIX.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from libs.config import load_settings
from libs.recovery.audit import RecoveryRecord
from services.recovery.service import RecoveryService

log = logging.getLogger("crasher")
SIGNALS = {"KILL": signal.SIGKILL, "STOP": signal.SIGSTOP}


async def _plan(path: Path) -> tuple[str, str]:
    while not path.exists():
        await asyncio.sleep(0.02)
    plan = json.loads(path.read_text())
    return str(plan["after"]), str(plan.get("signal", "KILL"))


async def run(config: str, crash_after: str | None, how: str, node: str, plan: str | None) -> None:
    if plan is not None:
        crash_after, how = await _plan(Path(plan))
    assert crash_after
    settings = load_settings(config)
    acted = False

    async def act_after(step: str, record: RecoveryRecord) -> None:
        nonlocal acted
        if acted or not step.startswith(crash_after):
            return
        acted = True
        log.warning("%s after step %s of recovery %s", how, step, record.uid)
        os.kill(os.getpid(), SIGNALS[how])  # STOP: carries on from here once continued
        log.warning("continued after step %s", step)

    service = await RecoveryService(settings, node=node, after_step=act_after).start()
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--crash-after")
    parser.add_argument("--signal", choices=sorted(SIGNALS), default="KILL")
    parser.add_argument("--plan")
    parser.add_argument("--node", default="crasher")
    args = parser.parse_args()
    if (args.crash_after is None) == (args.plan is None):
        parser.error("exactly one of --crash-after and --plan")
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.node} %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(args.config, args.crash_after, args.signal, args.node, args.plan))


if __name__ == "__main__":
    main()
