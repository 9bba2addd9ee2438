"""`python -m services.kvpublisher [--config FILE] [--dc NAME ...]` — run the KV publisher.

Publishes every cluster's master from baton_masters to the Consul of each selected data center until
SIGTERM or SIGINT, then stops cleanly (exit 0). Start-up errors (bad config, NATS unreachable) are one
line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from libs.bus.connection import connect
from libs.bus.provision import provision
from libs.config import load_settings
from libs.errors import BatonError, ConfigError
from libs.kv.consul import DEFAULT_TIMEOUT
from services.kvpublisher.config import (
    build_stores,
    reconcile_seconds,
    select_data_centers,
)
from services.kvpublisher.service import KVPublisher

log = logging.getLogger("services.kvpublisher")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.kvpublisher",
        description="Publish each cluster's master from baton_masters to every data center's Consul.",
    )
    parser.add_argument("--config", help="orchestrator-style JSON config file")
    parser.add_argument(
        "--dc", action="append", default=[], metavar="NAME", help="serve this DC (repeatable; default all)"
    )
    parser.add_argument("--nats", help="NATS URL(s), comma-separated (default: BatonNatsURLs)")
    parser.add_argument(
        "--reconcile-seconds",
        type=float,
        help="compare every cluster with Consul this often (default: BatonKVReconcileSeconds or 30)",
    )
    parser.add_argument(
        "--consul-timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per Consul request"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    settings = load_settings(args.config)
    data_centers = select_data_centers(settings, args.dc)
    period = reconcile_seconds(settings, args.reconcile_seconds)
    urls = args.nats or ",".join(settings.BatonNatsURLs)
    if not urls:
        raise ConfigError("no NATS configured: set BatonNatsURLs or pass --nats")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stores = build_stores(data_centers, timeout=args.consul_timeout)
    try:
        async with await connect(urls, f"kvpublisher-{settings.BatonNodeName}") as bus:
            await provision(bus.js, settings.BatonStreamReplicas)
            publisher = KVPublisher(
                bus,
                stores,
                prefix=settings.KVClusterMasterPrefix,
                reconcile_seconds=period,
                node=settings.BatonNodeName,
            )
            log.info("kvpublisher: serving %s (reconcile every %gs)", ", ".join(stores), period)
            running = asyncio.create_task(publisher.run(), name="kvpublisher")
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not running.done():
                log.info("kvpublisher: stopping")
                running.cancel()
            try:
                await running
            except asyncio.CancelledError:
                pass
    finally:
        for store in stores.values():
            await store.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    failures: list[BaseException] = []
    try:
        asyncio.run(serve(args))
    except* BatonError as group:
        failures.extend(group.exceptions)
    for exc in failures:
        print(f"kvpublisher: error: {exc}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
