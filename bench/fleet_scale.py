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
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from nats.aio.msg import Msg  # noqa: E402

from bench.detection_latency import start_service, stop_service  # noqa: E402
from bench.fleetsim.server import ControlClient, free_base_port  # noqa: E402
from bench.stopping import run_bench  # noqa: E402
from libs.bus.connection import Bus, connect  # noqa: E402
from libs.bus.provision import STREAMS, provision  # noqa: E402
from libs.bus.server import NatsServer, free_port  # noqa: E402
from libs.bus.subjects import DETECTIONS_ALL, PROBE_NOW, SNAPSHOTS_ALL  # noqa: E402
from libs.models import InstanceKey  # noqa: E402
from libs.models.events import Event  # noqa: E402
from libs.topology.detection_event import from_event  # noqa: E402

USER, PASSWORD = "baton", "fleet-bench-pw"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TICK_LINE = re.compile(r"tick: (\d+) clusters, (\d+) instances in ([0-9.]+) ms \(CPU ([0-9.]+) ms\)")
API_PROBES = 4  # instances whose API view is polled for the snapshot -> read model lag
API_POLL_S = 0.05


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by every process the bench starts): at 10k
    instances each prober worker holds a pooled and a liveness connection per owned instance and each
    simulator process a socket per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


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


def start_profilers(pids: dict[str, int], seconds: float, out_dir: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy (non-blocking sampling, collapsed stacks) on every prober worker for `seconds`."""
    spy = Path(sys.executable).with_name("py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--nonblocking",
                "--format",
                "raw",
                "--rate",
                "200",
                "--duration",
                str(int(seconds)),
                "--pid",
                str(pid),
                "--output",
                str(out_dir / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for name, pid in pids.items()
        if name.startswith("prober")
    ]


class Tally:
    """Snapshots and detections as they arrive (core NATS subscriptions in this process)."""

    def __init__(self) -> None:
        self.reachable: set[str] = set()
        self.by_prober: Counter[str] = Counter()
        # snapshots of instances with replicas (those the prober's liveness watch holds a connection to)
        self.with_replicas: Counter[str] = Counter()
        self.probe_now: Counter[str] = Counter()  # probe-now requests: "requests", "instances", "anyone"
        self.total = 0
        # each activation of a dead-master finding (DeadMaster, DeadMasterAndReplicas, ...): (time, code)
        self.dead_master: dict[str, list[tuple[float, str]]] = {}
        self.findings: dict[str, list[str]] = {}

    async def on_snapshot(self, msg: Msg) -> None:
        self.total += 1
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        self.by_prober[str(data.get("prober", ""))] += 1
        if data.get("replicas"):
            self.with_replicas[str(data.get("prober", ""))] += 1
        if data.get("reachable"):
            key = data.get("key") or {}
            self.reachable.add(f"{key.get('host')}:{key.get('port')}")

    async def on_probe_now(self, msg: Msg) -> None:
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        self.probe_now["requests"] += 1
        self.probe_now["instances"] += len(data.get("instances") or ())
        if data.get("anyone"):
            self.probe_now["anyone"] += 1

    async def on_detection(self, msg: Msg) -> None:
        try:
            d = from_event(Event.model_validate_json(msg.data))
        except ValueError:
            return
        self.findings.setdefault(str(d.finding.instance), []).append(
            f"{d.finding.code.value}:{d.state.value}"
        )
        if d.state.value == "active" and d.finding.code.value.startswith("DeadMaster"):
            at = (time.monotonic(), d.finding.code.value)
            self.dead_master.setdefault(str(d.finding.instance), []).append(at)

    def dead_master_since(self, key: str, since: float) -> tuple[float, str] | None:
        """The first dead-master activation on `key` at or after `since` (an earlier one, a false
        alarm on a starved machine, does not count)."""
        return next((a for a in self.dead_master.get(key, []) if a[0] >= since), None)


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


async def stream_bytes(bus: Any) -> dict[str, dict[str, Any]]:
    """Bytes and messages stored now in each of Baton's streams, with its retention limits."""
    out = {}
    for spec in STREAMS:
        info = await bus.js.stream_info(spec.name)
        out[spec.name] = {
            "bytes": int(info.state.bytes),
            "messages": int(info.state.messages),
            "last_seq": int(info.state.last_seq),
            "max_age_s": spec.max_age_s,
            "max_msgs_per_subject": spec.max_msgs_per_subject,
        }
    return out


def storage_growth(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], elapsed: float
) -> dict[str, dict[str, Any]]:
    """Each stream over the window: what was written (messages appended x their mean stored size) and
    what the stored bytes grew by, both per hour, with the retention limits that cap the stored size
    (BATON_SNAPSHOTS keeps 5 messages per instance for 1 h at most: it levels off at ~5 per instance)."""
    out = {}
    for name, b in before.items():
        a = after[name]
        mean = a["bytes"] / a["messages"] if a["messages"] else 0.0
        written = (a["last_seq"] - b["last_seq"]) * mean
        out[name] = {
            "bytes_before": b["bytes"],
            "bytes_after": a["bytes"],
            "messages_after": a["messages"],
            "mean_message_bytes": round(mean),
            "written_mib_per_hour": round(written * 3600 / elapsed / 2**20, 1),
            "stored_growth_mib_per_hour": round((a["bytes"] - b["bytes"]) * 3600 / elapsed / 2**20, 1),
            "max_age_h": b["max_age_s"] / 3600,
            "max_msgs_per_subject": b["max_msgs_per_subject"],
        }
    return out


def tick_costs(log_path: Path, offset: int) -> dict[str, Any]:
    """The analyzer's tick rounds logged after byte `offset` of its log: ms per round (all clusters)."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    found = list(TICK_LINE.finditer(text))
    if not found:
        return {"ticks": 0}
    ms = [float(m.group(3)) for m in found]
    cpu = [float(m.group(4)) for m in found]
    return {
        "ticks": len(ms),
        "clusters": max(int(m.group(1)) for m in found),
        "median_ms": round(statistics.median(ms), 1),
        "max_ms": round(max(ms), 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
        "cpu_max_ms": round(max(cpu), 1),
    }


async def api_lag(base_url: str, keys: list[str], seconds: float) -> dict[str, Any]:
    """Snapshot -> API read model: poll GET /api/instance/<host>/<port> for `keys` every API_POLL_S and,
    whenever BatonLastProbeAt moves on, take the time it became visible (the midpoint between the poll
    that still showed the old probe and the one that shows the new) minus the new probe's time."""
    lags: list[float] = []
    errors = 0

    async def watch(client: httpx.AsyncClient, key: str) -> None:
        nonlocal errors
        host, port = key.rsplit(":", 1)
        last: str | None = None
        prev_t = time.time()
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            try:
                r = await client.get(f"{base_url}/api/instance/{host}/{port}")
                seen = r.json().get("BatonLastProbeAt") if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                seen, errors = None, errors + 1
            now = time.time()
            if seen and last and seen != last:
                probed = datetime.fromisoformat(seen).timestamp()
                lags.append((prev_t + now) / 2 - probed)
            if seen:
                last = seen
            prev_t = now
            await asyncio.sleep(API_POLL_S)

    async with httpx.AsyncClient(timeout=5) as client:
        await asyncio.gather(*(watch(client, k) for k in keys))
    if not lags:
        return {"samples": 0, "errors": errors}
    lags.sort()
    return {
        "samples": len(lags),
        "median_ms": round(1000 * statistics.median(lags), 1),
        "p95_ms": round(1000 * lags[int(0.95 * (len(lags) - 1))], 1),
        "max_ms": round(1000 * lags[-1], 1),
        "poll_ms": round(1000 * API_POLL_S),
        "errors": errors,
    }


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
    profilers: list[subprocess.Popen[bytes]] = []
    nats = NatsServer(base / "nats")
    control: ControlClient | None = None
    bus: Bus | None = None
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
        api_url = ""
        if args.api:
            listen = f"127.0.0.1:{free_port()}"
            api_url = f"http://{listen}"
            settings |= {
                "BackendDB": "sqlite",
                "SQLite3DataFile": str(base / "read-model.db"),
                "ListenAddress": listen,
            }
        config.write_text(json.dumps(settings))
        bus = await connect(nats.url, "bench-fleet-scale")
        await provision(bus.js)
        tally = Tally()
        subs = [
            await bus.nc.subscribe(SNAPSHOTS_ALL, cb=tally.on_snapshot),
            await bus.nc.subscribe(DETECTIONS_ALL, cb=tally.on_detection),
            await bus.nc.subscribe(PROBE_NOW, cb=tally.on_probe_now),
        ]
        services = []
        if not args.no_recovery:
            services.append(("recovery", "services.recovery"))
        if args.api:
            services.append(("api", "services.api"))
        for i in range(args.workers):
            procs[f"prober{i + 1}"] = start_service("services.prober", config, base / f"prober{i + 1}.log")
        procs["analyzer"] = start_service("bench.analyzer_ticks", config, base / "analyzer.log")
        for name, module in services:
            procs[name] = start_service(module, config, base / f"{name}.log")

        started = time.monotonic()
        print(f"fleet_scale: {args.instances} instances, waiting for every one to be probed ...", flush=True)
        try:
            await wait_for(
                lambda: len(tally.reachable) >= args.min_probed * args.instances,
                args.discover_within,
                "the whole fleet",
            )
        except RuntimeError as exc:
            raise RuntimeError(
                f"{exc}: {len(tally.reachable)} of {args.instances} probed reachable"
            ) from None
        discovered_s = time.monotonic() - started
        print(
            f"fleet_scale: all {args.instances} probed after {discovered_s:.1f}s; measuring"
            if len(tally.reachable) >= args.instances
            else f"fleet_scale: {len(tally.reachable)} of {args.instances} probed after {discovered_s:.1f}s; "
            "measuring",
            flush=True,
        )
        await asyncio.sleep(args.settle)

        pids = {name: p.pid for name, p in procs.items()}
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        counts0, total0 = dict(tally.by_prober), tally.total
        watched0, probe_now0 = dict(tally.with_replicas), dict(tally.probe_now)
        load0 = os.getloadavg()
        streams0 = await stream_bytes(bus)
        tick_offset = (base / "analyzer.log").stat().st_size
        api_task = None
        if args.api:  # a sample of instances, spread over the fleet
            step = max(1, len(ready["instances"]) // API_PROBES)
            api_keys = ready["instances"][::step][:API_PROBES]
            api_task = asyncio.create_task(api_lag(api_url, api_keys, args.measure))
        if args.profile:
            profilers += start_profilers(pids, args.measure, Path(args.profile))
        t0 = time.monotonic()
        await asyncio.sleep(args.measure)
        elapsed = time.monotonic() - t0
        streams1 = await stream_bytes(bus)
        for spy in profilers:
            await asyncio.to_thread(spy.wait, 60)
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        counts = {k: v - counts0.get(k, 0) for k, v in tally.by_prober.items()}
        watched = {k: v - watched0.get(k, 0) for k, v in tally.with_replicas.items()}
        memory = {name: round(rss_mib(pid), 1) for name, pid in pids.items()}
        load1 = os.getloadavg()

        workers = {}
        for i in range(args.workers):
            name = f"prober{i + 1}"
            pid = str(pids[name])
            probes = sum(n for worker, n in counts.items() if f"-{pid}-" in worker)
            workers[name] = {
                "probes": probes,
                "with_replicas_share": round(
                    sum(n for w, n in watched.items() if f"-{pid}-" in w) / probes, 3
                )
                if probes
                else None,
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
            "probed_reachable_at_start": len(tally.reachable),
            "measure_s": round(elapsed, 1),
            "snapshots_per_s": round((tally.total - total0) / elapsed, 1),
            "probe_now": {k: v - probe_now0.get(k, 0) for k, v in tally.probe_now.items()},
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
            "analyzer_tick": tick_costs(base / "analyzer.log", tick_offset),
            "jetstream": storage_growth(streams0, streams1, elapsed),
            "loadavg_before": [round(x, 2) for x in load0],
            "loadavg_after": [round(x, 2) for x in load1],
            "cpu_count": os.cpu_count(),
        }
        if api_task is not None:
            result["api_read_model_lag"] = await api_task
        print(json.dumps(result), flush=True)
        if args.kill_master:
            victim = readies[0]["masters"][0]
            await asyncio.sleep(1.0)
            t_kill = time.monotonic()
            await control.call("kill", instance=victim)
            key = str(InstanceKey.parse(victim))
            try:
                await wait_for(
                    lambda: tally.dead_master_since(key, t_kill) is not None,
                    4 * args.poll + 30,
                    "the DeadMaster detection",
                )
                found = tally.dead_master_since(key, t_kill)
                assert found is not None
                result["detection_s"] = round(found[0] - t_kill, 3)
                result["detection_code"] = found[1]
                # dead-master alarms on the victim before it was killed (false, from a starved machine)
                result["false_dead_master_before_kill"] = len(tally.dead_master.get(key, [])) - len(
                    [a for a in tally.dead_master.get(key, []) if a[0] >= t_kill]
                )
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
        return result
    finally:
        if bus is not None:  # before the nats-server stops: no reconnect attempts to a stopped server
            await bus.close()
        if control is not None:
            await control.close()
        for proc in [*profilers, *(p for name, p in procs.items() if not name.startswith("fleetsim"))]:
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
    parser.add_argument(
        "--min-probed",
        type=float,
        default=1.0,
        help="measure once this fraction of the fleet has been probed reachable (default: all of it)",
    )
    parser.add_argument("--seed-all", action="store_true", help="seed every instance (default: the masters)")
    parser.add_argument("--kill-master", action="store_true", help="then time one DeadMaster detection")
    parser.add_argument("--no-recovery", action="store_true")
    parser.add_argument("--failover-within", type=float, default=120.0, help="seconds to wait for it")
    parser.add_argument("--api", action="store_true", help="also run the API and its read model")
    parser.add_argument("--keep", metavar="DIR", help="work (config, logs, nats data) in DIR and keep it")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy every prober worker over the window into DIR"
    )
    parser.add_argument(
        "--sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        help="run each fleet size in turn (e.g. 1000,5000,10000; --sims at least one per 5,000 instances) "
        "and write the JSON, docs/fleet_scale.png and the docs/benchmarks.md section",
    )
    parser.add_argument(
        "--scale-poll",
        type=float,
        metavar="RATE",
        help="with --sizes: InstancePollSeconds = max(--poll, instances / RATE), so every size is probed "
        "at about RATE probes/s (2 shared cores cannot probe and simulate 10k instances every 5 s)",
    )
    parser.add_argument("--from-json", metavar="FILE", help="only write the report from a --sizes JSON")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where --sizes writes the PNG and JSON")
    args = parser.parse_args()
    if min(args.instances, args.workers, args.poll, args.sims) < 1 or args.measure <= 0:
        parser.error("--instances, --workers, --sims and --poll must be >= 1, --measure > 0")
    nofile = raise_nofile()
    if args.sizes:
        await run_sizes(args)
        return
    if args.from_json:
        from bench.fleet_report import report_from

        report_from(Path(args.from_json), Path(args.out), kill_master=args.kill_master, api=args.api)
        return
    result = await run_one(args)
    result["rlimit_nofile"] = nofile[0]
    print(json.dumps(result, indent=2))


async def run_one(args: argparse.Namespace) -> dict[str, Any]:
    if args.keep:
        return await run(args, work_dir(args.keep))
    with tempfile.TemporaryDirectory(prefix="baton-fleet-") as tmp:
        return await run(args, Path(tmp))


async def run_sizes(args: argparse.Namespace) -> None:
    """Each size in turn (simulator processes: at least one per 5,000 instances), then the figures."""
    from bench.fleet_report import save_results, write_report

    results = []
    for n in args.sizes:
        poll = max(args.poll, round(n / args.scale_poll)) if args.scale_poll else args.poll
        one = argparse.Namespace(
            **{**vars(args), "instances": n, "sims": max(args.sims, -(-n // 5000)), "poll": poll}
        )
        if args.keep:
            one.keep = str(Path(args.keep) / str(n))
        print(f"fleet_scale: --- {n} instances ({one.sims} simulator processes) ---", flush=True)
        load = os.getloadavg()
        try:
            result = await run_one(one)
        except RuntimeError as exc:  # a size that cannot be measured here is reported as such
            result = {
                "instances": n,
                "poll_s": poll,
                "error": str(exc),
                "loadavg": [round(x, 2) for x in load],
            }
        print(json.dumps(result), flush=True)
        results.append(result)
        save_results(results, Path(args.out))  # so far: a later size that fails keeps these
    write_report(results, Path(args.out), kill_master=args.kill_master, api=args.api)


if __name__ == "__main__":
    run_bench(main(), "fleet_scale")
