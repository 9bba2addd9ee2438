"""Fleet scale (issue 18, item 2) — skeleton: Baton's pipeline against a simulated fleet of N instances.

Starts, each as its own process on loopback: the fleet simulator (`python -m bench.fleetsim`: clusters of
1 master + 2..8 replicas, some chains; `--sims K` processes sharing the clusters), one nats-server,
`--workers` prober workers sharing the shards, the analyzer and the recovery (and, with `--api`, the API
and its read model). The probers discover the fleet from its masters (DiscoverySeeds); once every
instance has a reachable snapshot the bench measures for `--measure` seconds: snapshots per second per
worker (core subscription on `baton.snapshot.>`), CPU time per probe per worker and the services' CPU
and resident memory (/proc), with the machine's load.
With `--kill-master` it then kills one master through the simulator's control channel and times the
DeadMaster detection event (`baton.detection.>`) and, unless `--no-recovery`, the failover as the
simulated cluster shows it (another member writable, every live member replicating from it).

Prints one JSON document; writes nothing to docs/ (figures are taken on a quiet machine, issue 18).
Stops every process it started on SIGINT, SIGTERM, SIGHUP or an error (`bench.stopping`).

    .venv/bin/python bench/fleet_scale.py [--instances 1000] [--workers 2] [--sims 1] [--poll 5]
                                          [--measure 30] [--kill-master] [--no-recovery] [--api]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nats.aio.msg import Msg  # noqa: E402

from bench.detection_latency import start_service, stop_service  # noqa: E402
from bench.fleetsim.server import ControlClient, free_base_port  # noqa: E402
from bench.stopping import run_bench  # noqa: E402
from libs.bus.connection import connect  # noqa: E402
from libs.bus.provision import provision  # noqa: E402
from libs.bus.server import NatsServer, free_port  # noqa: E402
from libs.bus.subjects import DETECTIONS_ALL, SNAPSHOTS_ALL  # noqa: E402
from libs.models import InstanceKey  # noqa: E402
from libs.models.events import Event  # noqa: E402
from libs.topology.detection_event import from_event  # noqa: E402

USER, PASSWORD = "baton", "fleet-bench-pw"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its own threads; children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_simulator(instances: int, base_port: int, shard: str) -> subprocess.Popen[bytes]:
    argv = [
        "--shard",
        shard,
        "--instances",
        str(instances),
        "--base-port",
        str(base_port),
        "--user",
        USER,
        "--password",
        PASSWORD,
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "bench.fleetsim", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


class Tally:
    """Snapshots and detections as they arrive (core NATS subscriptions in this process)."""

    def __init__(self) -> None:
        self.reachable: set[str] = set()
        self.by_prober: Counter[str] = Counter()
        self.total = 0
        self.dead_master: dict[str, float] = {}
        self.findings: dict[str, list[str]] = {}

    async def on_snapshot(self, msg: Msg) -> None:
        self.total += 1
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        self.by_prober[str(data.get("prober", ""))] += 1
        if data.get("reachable"):
            key = data.get("key") or {}
            self.reachable.add(f"{key.get('host')}:{key.get('port')}")

    async def on_detection(self, msg: Msg) -> None:
        try:
            d = from_event(Event.model_validate_json(msg.data))
        except ValueError:
            return
        self.findings.setdefault(str(d.finding.instance), []).append(
            f"{d.finding.code.value}:{d.state.value}"
        )
        if d.state.value == "active" and d.finding.code.value == "DeadMaster":
            self.dead_master.setdefault(str(d.finding.instance), time.monotonic())


async def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.25)


async def simulator_stats(readies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for ready in readies:
        client = ControlClient("127.0.0.1", int(ready["control_port"]))
        try:
            out.append(await client.call("stats"))
        finally:
            await client.close()
    return out


def leads_to(upstream: dict[str, str | None], start: str, top: str) -> bool:
    """True when following `start`'s masters (chains included) reaches `top`."""
    at: str | None = start
    for _ in range(16):
        at = upstream.get(at or "")
        if at == top:
            return True
        if at is None:
            return False
    return False


async def wait_promoted(control: ControlClient, victim: str, within: float) -> tuple[str, float] | None:
    """Watch the simulated cluster of `victim` (through the control channel) until another of its
    instances is writable, replicates from nobody, and every other live member replicates from it,
    directly or down a chain: the failover as the fleet itself shows it. Returns (new master, monotonic
    time), or None when that does not happen within `within` seconds."""
    deadline = time.monotonic() + within
    cluster = (await control.call("show", instance=victim))["cluster"]
    while time.monotonic() < deadline:
        members = (await control.call("topology"))["clusters"][cluster]
        for candidate in members["masters"]:
            if candidate == victim:
                continue
            shown = await control.call("show", instance=candidate)
            if shown["read_only"] or not shown["alive"]:
                continue
            others = [await control.call("show", instance=r["instance"]) for r in members["replicas"]]
            upstream = {o["instance"]: o["master"] for o in others}
            if all(
                o["io"] == "Yes" and leads_to(upstream, o["instance"], candidate)
                for o in others
                if o["alive"]
            ):
                return candidate, time.monotonic()
        await asyncio.sleep(0.2)
    return None


async def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    nats = NatsServer(base / "nats")
    control: ControlClient | None = None
    try:
        sim_base = free_base_port(args.instances)
        sims = [start_simulator(args.instances, sim_base, f"{i}/{args.sims}") for i in range(args.sims)]
        readies = []
        for i, sim in enumerate(sims):
            procs[f"fleetsim{i + 1}"] = sim
            assert sim.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 300)
            if not line:
                raise RuntimeError("a fleet simulator exited before it was ready")
            readies.append(json.loads(line))
        ready = {
            "masters": [m for r in readies for m in r["masters"]],
            "instances": [i for r in readies for i in r["instances"]],
        }
        control = ControlClient("127.0.0.1", int(readies[0]["control_port"]))
        nats.start()
        config = base / "baton.json"
        settings: dict[str, Any] = {
            "BatonNatsURLs": [nats.url],
            "InstancePollSeconds": args.poll,
            "ReasonableInstanceCheckSeconds": 1,
            "MySQLTopologyUser": USER,
            "MySQLTopologyPassword": PASSWORD,
            "MySQLReplicationUser": "repl",
            "MySQLReplicationPassword": "repl-pw",
            "MySQLConnectTimeoutSeconds": 2,
            "MySQLDiscoveryReadTimeoutSeconds": 5,
            "MySQLHostnameResolveMethod": "@@report_host",
            "DiscoverByShowSlaveHosts": True,
            "DiscoverySeeds": ready["instances"] if args.seed_all else ready["masters"],
            "RecoverMasterClusterFilters": ["*"],
        }
        if args.api:
            settings |= {
                "BackendDB": "sqlite",
                "SQLite3DataFile": str(base / "read-model.db"),
                "ListenAddress": f"127.0.0.1:{free_port()}",
            }
        config.write_text(json.dumps(settings))
        bus = await connect(nats.url, "bench-fleet-scale")
        await provision(bus.js)
        tally = Tally()
        subs = [
            await bus.nc.subscribe(SNAPSHOTS_ALL, cb=tally.on_snapshot),
            await bus.nc.subscribe(DETECTIONS_ALL, cb=tally.on_detection),
        ]
        services = [("analyzer", "services.analyzer")]
        if not args.no_recovery:
            services.append(("recovery", "services.recovery"))
        if args.api:
            services.append(("api", "services.api"))
        for i in range(args.workers):
            procs[f"prober{i + 1}"] = start_service("services.prober", config, base / f"prober{i + 1}.log")
        for name, module in services:
            procs[name] = start_service(module, config, base / f"{name}.log")

        started = time.monotonic()
        print(f"fleet_scale: {args.instances} instances, waiting for every one to be probed ...", flush=True)
        try:
            await wait_for(
                lambda: len(tally.reachable) >= args.instances, args.discover_within, "the whole fleet"
            )
        except RuntimeError as exc:
            raise RuntimeError(
                f"{exc}: {len(tally.reachable)} of {args.instances} probed reachable"
            ) from None
        discovered_s = time.monotonic() - started
        print(f"fleet_scale: all {args.instances} probed after {discovered_s:.1f}s; measuring", flush=True)
        await asyncio.sleep(args.settle)

        pids = {name: p.pid for name, p in procs.items()}
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        counts0, total0 = dict(tally.by_prober), tally.total
        load0 = os.getloadavg()
        t0 = time.monotonic()
        await asyncio.sleep(args.measure)
        elapsed = time.monotonic() - t0
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        counts = {k: v - counts0.get(k, 0) for k, v in tally.by_prober.items()}
        memory = {name: round(rss_mib(pid), 1) for name, pid in pids.items()}
        load1 = os.getloadavg()

        workers = {}
        for i in range(args.workers):
            name = f"prober{i + 1}"
            pid = str(pids[name])
            probes = sum(n for worker, n in counts.items() if f"-{pid}-" in worker)
            workers[name] = {
                "probes": probes,
                "probes_per_s": round(probes / elapsed, 1),
                "cpu_s": round(cpu[name], 2),
                "cpu_ms_per_probe": round(1000 * cpu[name] / probes, 3) if probes else None,
            }
        result: dict[str, Any] = {
            "instances": args.instances,
            "clusters": len(ready["masters"]),
            "simulator_processes": args.sims,
            "poll_s": args.poll,
            "discovered_s": round(discovered_s, 1),
            "measure_s": round(elapsed, 1),
            "snapshots_per_s": round((tally.total - total0) / elapsed, 1),
            # the simulator's own cost per probe answered (its CPU over the window / snapshots published)
            "simulator_cpu_ms_per_probe": round(
                1000
                * sum(v for k, v in cpu.items() if k.startswith("fleetsim"))
                / max(1, tally.total - total0),
                3,
            ),
            "workers": workers,
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "rss_mib": memory,
            "loadavg_before": [round(x, 2) for x in load0],
            "loadavg_after": [round(x, 2) for x in load1],
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(result), flush=True)
        if args.kill_master:
            victim = readies[0]["masters"][0]
            await asyncio.sleep(1.0)
            t_kill = time.monotonic()
            await control.call("kill", instance=victim)
            key = str(InstanceKey.parse(victim))
            try:
                await wait_for(
                    lambda: key in tally.dead_master, 4 * args.poll + 30, "the DeadMaster detection"
                )
                result["detection_s"] = round(tally.dead_master[key] - t_kill, 3)
            except RuntimeError as exc:
                result["detection_s"] = None
                result["detection_error"] = f"{exc}; findings on {key}: {tally.findings.get(key, [])}"
            if not args.no_recovery:
                promoted = await wait_promoted(control, victim, args.failover_within)
                if promoted is None:
                    result["failover_s"] = None
                else:
                    result["failover_s"] = round(promoted[1] - t_kill, 3)
                    result["promoted"] = promoted[0]
        stats = await simulator_stats(readies)
        result["simulator_errors"] = [s["errors"] for s in stats]  # errno -> count (1146: meta tables etc.)
        result["simulator_unknown_statements"] = [u for s in stats for u in s["unknown_statements"]]
        for sub in subs:
            await sub.unsubscribe()
        await bus.close()
        return result
    finally:
        if control is not None:
            await control.close()
        for name, proc in procs.items():
            if not name.startswith("fleetsim"):
                stop_service(proc)
        nats.stop()
        for name, proc in procs.items():
            if name.startswith("fleetsim"):
                stop_service(proc)


def work_dir(path: str) -> Path:
    keep = Path(path).resolve()
    keep.mkdir(parents=True, exist_ok=True)
    return keep


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sims", type=int, default=1, help="simulator processes (>= 2 for 10k instances)")
    parser.add_argument("--poll", type=int, default=5, help="InstancePollSeconds")
    parser.add_argument("--measure", type=float, default=30.0, help="seconds of measurement")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between discovery and measurement")
    parser.add_argument("--discover-within", type=float, default=600.0)
    parser.add_argument("--seed-all", action="store_true", help="seed every instance (default: the masters)")
    parser.add_argument("--kill-master", action="store_true", help="then time one DeadMaster detection")
    parser.add_argument("--no-recovery", action="store_true")
    parser.add_argument("--failover-within", type=float, default=120.0, help="seconds to wait for it")
    parser.add_argument("--api", action="store_true", help="also run the API and its read model")
    parser.add_argument("--keep", metavar="DIR", help="work (config, logs, nats data) in DIR and keep it")
    args = parser.parse_args()
    if min(args.instances, args.workers, args.poll, args.sims) < 1 or args.measure <= 0:
        parser.error("--instances, --workers, --sims and --poll must be >= 1, --measure > 0")
    if args.keep:
        result = await run(args, work_dir(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="baton-fleet-") as tmp:
            result = await run(args, Path(tmp))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run_bench(main(), "fleet_scale")
