"""How many probes per second can one prober core do? Target (issue 3): >= 2,000 probes/s on one core
(a 10,000-instance fleet at a 5 s interval per core).

Starts its own 4-node MariaDB sandbox (and, with --publish, a nats-server) on loopback, then for each
fleet size N runs N closed-loop probe loops (probe, optionally publish the snapshot, repeat) for
`--seconds`. The N logical instances are mapped onto the 4 real servers through N/4 separate connection
pools, so every logical instance has its own pooled connection, as in production. Reported per N:
probes per wall-clock second (bounded here by the 4 servers sharing the machine's 2 cores with us) and
the prober process's CPU seconds per 1,000 probes, whose inverse is what one prober core can sustain.

    .venv/bin/python bench/probe_throughput.py [--sizes 4,64,256,1024] [--seconds 4]
        [--publish ack|noack|none] [--uvloop] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stopping import run_bench
from libs.bus.connection import Bus, connect
from libs.bus.messages import publish_model
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.bus.subjects import snapshot_subject
from libs.mysql import ConnectionPool, ProbeSettings, probe
from libs.sandbox import NodeOptions, NodeSpec, Sandbox, TopologySpec

TARGET = 2000.0  # probes/s on one core
OPTIONS = NodeOptions(extra_args=("--max-connections=2000", "--thread-cache-size=512"))


def spec() -> TopologySpec:
    nodes = [NodeSpec(name="master", options=OPTIONS)]
    nodes += [NodeSpec(name=f"replica{i}", master="master", options=OPTIONS) for i in (1, 2, 3)]
    return TopologySpec(shape="bench", nodes=tuple(nodes))


async def run_size(
    sb: Sandbox, n: int, seconds: float, bus: Bus | None, settings: ProbeSettings, *, ack: bool = True
) -> dict[str, float]:
    servers = [sb.key(name) for name in sb.names]
    pools = [ConnectionPool(connect_timeout=5, read_timeout=10) for _ in range(max(1, n // len(servers)))]
    loops = [(pools[i // len(servers)], servers[i % len(servers)]) for i in range(n)]
    creds = sb.topology_creds
    count = 0
    failed = 0
    stop_at = 0.0

    async def one(pool: ConnectionPool, key: object, measure: bool) -> None:
        nonlocal count, failed
        while True:
            snap = await probe(key, creds, settings, pool=pool, prober="bench")  # type: ignore[arg-type]
            if bus is not None and ack:
                await publish_model(bus.js, snapshot_subject(snap.key), snap)
            elif bus is not None:  # fire and forget: JetStream stores it, nobody waits for the ack
                await bus.nc.publish(snapshot_subject(snap.key), snap.model_dump_json().encode())
            if not snap.reachable:
                failed += 1
            if not measure:
                return
            count += 1
            if time.monotonic() >= stop_at:
                return

    # Warm up: open every connection (handshakes are not what we measure).
    await asyncio.gather(*(one(p, k, False) for p, k in loops))
    count = failed = 0
    stop_at = time.monotonic() + seconds
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(p, k, True) for p, k in loops))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for pool in pools:
        pool.close()
    per_1000 = cpu / count * 1000 if count else float("inf")
    return {
        "n": n,
        "probes": count,
        "failed": failed,
        "wall_rate": count / wall,
        "cpu_per_1000": per_1000,
        "core_rate": 1000 / per_1000,
        "cpu_share": cpu / wall,
    }


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="baton-bench-probe-"))
    sb = Sandbox(base / "sandbox", spec(), template_dir=base / "template")
    nats: NatsServer | None = None
    bus: Bus | None = None
    print(f"starting a 4-node sandbox in {base} ...", flush=True)
    await sb.start()
    try:
        if args.publish != "none":
            nats = NatsServer(base / "nats")
            nats.start()
            bus = await connect(nats.url, "bench")
            await provision(bus.js)
        settings = ProbeSettings(discover_by_show_slave_hosts=True)
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(f"event loop: {loop_name}; publish: {args.publish}; {args.seconds:g}s per size")
        print(
            f"{'instances':>9} {'probes':>8} {'probes/s':>9} {'CPU s/1000':>10}"
            f" {'probes/s/core':>13} {'vs target':>9} {'CPU use':>7}"
        )
        profiler = cProfile.Profile() if args.profile else None
        for n in args.sizes:
            if profiler is not None and n == args.sizes[-1]:
                profiler.enable()
            r = await run_size(sb, n, args.seconds, bus, settings, ack=args.publish == "ack")
            if profiler is not None:
                profiler.disable()
            print(
                f"{r['n']:>9.0f} {r['probes']:>8.0f} {r['wall_rate']:>9.0f} {r['cpu_per_1000']:>10.3f}"
                f" {r['core_rate']:>13.0f} {r['core_rate'] / TARGET:>8.2f}x"
                f" {r['cpu_share'] * 100:>6.0f}%",
                flush=True,
            )
            if r["failed"]:
                print(f"  ({r['failed']:.0f} probes failed)")
        if profiler is not None:
            profiler.dump_stats(args.profile)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    finally:
        if bus is not None:
            await bus.close()
        if nats is not None:
            nats.stop()
        await sb.stop()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,64,256,1024", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", default=4.0, type=float)
    parser.add_argument(
        "--publish",
        choices=("none", "ack", "noack"),
        default="ack",
        help="publish every snapshot to JetStream and wait for the ack (as the prober does), or not",
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    parser.add_argument("--profile", help="cProfile the largest size into this file")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse()
    if args.uvloop:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    run_bench(main(args), "probe_throughput")
