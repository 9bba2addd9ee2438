"""`python -m bench.fleetsim --instances 1000 [--addressing ports|addrs] [--base-port 23000] [--shard I/N]`

Starts a simulated fleet (clusters of 1 master + 2..8 replicas, some chains) and its control channel,
prints one JSON line `{"ready": true, "control_port": .., "instances": [..], "masters": [..]}` on stdout,
and serves until SIGINT/SIGTERM (then closes every socket and exits 128+signal)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.fleetsim.model import build_fleet, keep_shard, mixed_shapes
from bench.fleetsim.server import FleetSimulator
from bench.stopping import run_bench


async def serve(args: argparse.Namespace) -> None:
    fleet = build_fleet(
        mixed_shapes(args.instances, chain_every=args.chain_every),
        now=time.monotonic(),
        addressing=args.addressing,
        base_port=args.base_port,
        write_rate=args.write_rate,
        heartbeat_period=args.heartbeat_period,
        slave_net_timeout=args.slave_net_timeout,
    )
    index, _, count = args.shard.partition("/")
    keep_shard(fleet, int(index), int(count))
    creds = (args.user, args.password) if args.user else None
    async with FleetSimulator(fleet, credentials=creds) as sim:
        port = await sim.serve_control(args.control_host, args.control_port)
        ready = {
            "ready": True,
            "control_port": port,
            "instances": [n.key for n in fleet],
            "masters": [n.key for n in fleet if n.master is None],
        }
        print(json.dumps(ready), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.fleetsim", description=__doc__)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--addressing", choices=("ports", "addrs"), default="ports")
    ap.add_argument("--base-port", type=int, default=23000)
    ap.add_argument("--chain-every", type=int, default=5)
    ap.add_argument("--write-rate", type=float, default=10.0)
    ap.add_argument("--heartbeat-period", type=float, default=1.0)
    ap.add_argument("--slave-net-timeout", type=float, default=60.0)
    ap.add_argument("--user", default="", help="require this user (with --password); default: accept any")
    ap.add_argument("--password", default="")
    ap.add_argument(
        "--shard",
        default="0/1",
        help="I/N: serve only the clusters of shard I of N (run N processes with the same fleet arguments)",
    )
    ap.add_argument("--control-host", default="127.0.0.1")
    ap.add_argument("--control-port", type=int, default=0)
    args = ap.parse_args(argv)
    if args.instances < 1:
        ap.error("--instances must be >= 1")
    index, _, count = args.shard.partition("/")
    if not (index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        ap.error("--shard must be I/N with 0 <= I < N")
    if not 1 <= args.base_port <= 65535 or (
        args.addressing == "ports" and args.base_port + args.instances > 65535
    ):
        ap.error("--base-port: the instances' ports must fit in 1..65535")
    run_bench(serve(args), "fleetsim")


if __name__ == "__main__":
    main()
