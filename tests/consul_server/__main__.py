"""`python -m tests.consul_server --port N [--dc dc1] [--data-dir D] [--token T] [--read-token R]`.

Runs one test datacenter's Consul until SIGTERM/SIGINT. With `--data-dir` the KV state is written on
every change and reloaded at start, so a stopped (even SIGKILLed) DC comes back with its data, as a
real Consul agent does. Tokens can also come from the environment (`TEST_CONSUL_TOKEN`,
`TEST_CONSUL_READ_TOKEN`) so they never show in `ps`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
from pathlib import Path

from tests.consul_server.app import ServerConfig
from tests.consul_server.server import ConsulTestServer


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.consul_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dc", default="dc1")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--token", default=os.environ.get("TEST_CONSUL_TOKEN"))
    parser.add_argument("--read-token", default=os.environ.get("TEST_CONSUL_READ_TOKEN"))
    parser.add_argument("--max-txn-ops", type=int, default=64)
    args = parser.parse_args(argv)
    if not (args.host.startswith("127.") or _in_chaos_lab(args.host)):
        parser.error("the test Consul binds loopback (or a chaos-lab namespace address) only")
    return args


def _in_chaos_lab(host: str) -> bool:
    """An address of the chaos tier's private subnet (tests/chaos/netlab.py), which exists only inside
    the lab's network namespaces and is blackholed in the root one."""
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("10.213.0.0/24")
    except ValueError:
        return False


async def serve(args: argparse.Namespace) -> None:
    config = ServerConfig(
        datacenter=args.dc, acl_token=args.token, read_token=args.read_token, max_txn_ops=args.max_txn_ops
    )
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    server = ConsulTestServer(config, data_dir=args.data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start(args.host, args.port)
    print(f"READY {server.address} dc={args.dc}", flush=True)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
