"""`python -m services.recovery [--config FILE]`: run one recovery process until SIGINT/SIGTERM.

Every process competes for the recovery lease; the leader acts. Configuration: the JSON file
(orchestrator's keys) and `BATON_<Key>` environment variables. A bad configuration or an unreachable
NATS is one line on stderr and exit code 1; a clean shutdown lets running recoveries finish and
releases the lease so a standby takes over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from libs.config import load_settings
from libs.errors import BatonError
from libs.telemetry import setup_telemetry
from services.recovery.service import RecoveryService

log = logging.getLogger("services.recovery")


async def run(config_path: str | None) -> None:
    settings = load_settings(config_path)
    exporter = settings.BatonTelemetryExporter
    setup_telemetry(
        "baton-recovery",
        exporter if exporter != "prometheus" else "none",
        settings.BatonTelemetryEndpoint or None,
    )
    service = await RecoveryService(settings).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await service.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.recovery", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="orchestrator-style JSON config file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ... (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run(args.config))
    except BatonError as exc:
        print(f"baton-recovery: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
