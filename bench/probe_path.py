"""The prober's probe + publish path, measured next to the simulated fleet (issue 18, item 4): CPU per
probe of Baton's own probe loop (`services.prober.loop.ProbeLoop`: probe, JetStream publish, metrics)
over N simulated instances, each probed back to back, with the simulator (`bench.fleetsim`) and the
nats-server running on the same machine. Target: >= 2,000 probes/s per core (<= 0.5 ms CPU per probe).

Modes, run in turn (ABAB...) so that the machine's load weighs on each alike:
  acked    every probe waits for its JetStream ack (`publish_max_in_flight` 0, as before issue 18)
  bounded  acks are not waited for, at most `--in-flight` snapshots in flight (the prober's default)

    .venv/bin/python bench/probe_path.py [--instances 1000] [--seconds 10] [--rounds 2]
                                         [--modes acked,bounded] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detection_latency import stop_service  # noqa: E402
from bench.fleet_scale import PASSWORD, USER, raise_nofile, start_simulator  # noqa: E402
from bench.fleetsim.server import free_base_port  # noqa: E402
from bench.stopping import run_bench  # noqa: E402
from libs.bus.connection import connect  # noqa: E402
from libs.bus.provision import provision  # noqa: E402
from libs.bus.server import NatsServer  # noqa: E402
from libs.models import InstanceKey  # noqa: E402
from libs.mysql import Credentials, ProbeSettings  # noqa: E402
from services.prober.config import ProberConfig  # noqa: E402
from services.prober.loop import ProbeLoop  # noqa: E402

TARGET = 2000.0


async def measure(js: Any, keys: list[InstanceKey], mode: str, args: argparse.Namespace) -> dict[str, Any]:
    config = ProberConfig(
        worker_id=f"bench-{mode}",
        credentials=Credentials(user=USER, password=PASSWORD),
        poll_s=0.001,  # back to back: every instance is probed again as soon as its probe is published
        probe=ProbeSettings(discover_by_show_slave_hosts=True, connect_timeout=5, read_timeout=10),
        publish_max_in_flight=0 if mode == "acked" else args.in_flight,
    )
    loop = ProbeLoop(config, js)
    loop.set_owned(keys)
    await asyncio.sleep(args.warmup)  # connections opened, caches warm
    profiler = cProfile.Profile() if args.profile else None
    n0, cpu0, wall0 = loop.probes, time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(args.seconds)
    if profiler is not None:
        profiler.disable()
    probes, cpu, wall = loop.probes - n0, time.process_time() - cpu0, time.perf_counter() - wall0
    failures = loop.publish_failures
    await loop.stop()
    if profiler is not None:
        profiler.dump_stats(f"{args.profile}.{mode}")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return {
        "mode": mode,
        "probes": probes,
        "probes_per_s": round(probes / wall),
        "cpu_ms_per_probe": round(1000 * cpu / probes, 3) if probes else None,
        "probes_per_s_per_core": round(probes / cpu) if cpu else None,
        "cpu_share": round(cpu / wall, 2),
        "publish_failures": failures,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


async def main(args: argparse.Namespace) -> None:
    raise_nofile()
    base = Path(tempfile.mkdtemp(prefix="baton-probe-path-"))
    sim = start_simulator(args.instances, free_base_port(args.instances), "0/1")
    nats = NatsServer(base / "nats")
    try:
        assert sim.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 300)
        if not line:
            raise RuntimeError("the fleet simulator exited before it was ready")
        keys = [InstanceKey.parse(i) for i in json.loads(line)["instances"]]
        nats.start()
        bus = await connect(nats.url, "bench-probe-path")
        await provision(bus.js)
        print(f"probe_path: {len(keys)} simulated instances, {args.seconds:g}s per run", flush=True)
        results = []
        for _ in range(args.rounds):
            for mode in args.modes:
                r = await measure(bus.js, keys, mode, args)
                results.append(r)
                print(json.dumps(r), flush=True)
        summary = {}
        for mode in args.modes:
            runs = [r for r in results if r["mode"] == mode and r["cpu_ms_per_probe"]]
            cpu = sum(r["cpu_ms_per_probe"] * r["probes"] for r in runs) / sum(r["probes"] for r in runs)
            summary[mode] = {
                "cpu_ms_per_probe": round(cpu, 3),
                "probes_per_s_per_core": round(1000 / cpu),
                "vs_target": round(1000 / cpu / TARGET, 2),
            }
        print(json.dumps({"instances": len(keys), "summary": summary}, indent=2))
        await bus.close()
    finally:
        nats.stop()
        stop_service(sim)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", type=lambda v: v.split(","), default=["acked", "bounded"])
    parser.add_argument("--in-flight", type=int, default=256, help="publish_max_in_flight for bounded")
    parser.add_argument("--profile", metavar="FILE", help="cProfile each run into FILE.<mode>")
    return parser.parse_args()


if __name__ == "__main__":
    run_bench(main(parse()), "probe_path")
