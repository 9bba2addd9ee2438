"""Partitioned master: the master alone is cut off → `GET /api/master/<alias>` names a new writable master.

A network partition that leaves the master running but unreachable looks, from everyone else, like a
hung server: TCP connections go silent, nothing is refused, the replicas' IO threads say "Yes" until
their `slave_net_timeout`. Each run opens a `tests/chaos/netlab.py` lab with four namespaces: dc1, dc2 and
dc3 hold Baton (`tests/chaos/world.py`: one nats-server per DC in one JetStream cluster, a test Consul,
prober, analyzer, recovery and kvpublisher per DC, the API in dc2) and one replica each; "dcm" holds only
the master (MariaDB 10.11, GTID, 1 s heartbeats). Baton settings as in bench/hung_master.py (poll 1 s,
1 s probe timeouts). Once the API names the master, `lab.isolate("dcm")` takes the master's port off the
bridge and a poller inside the observer namespace asks `GET /api/master/<alias>` every 5 ms until it
names another server with `ReadOnly: false`; its answer times and the cut share the machine's monotonic
clock. Detection (cut → the first analyzer's DeadMaster, from the services' logs) is given beside the
total. Writes the `partitioned_master` section of docs/benchmarks.md after the hung_master one.
SIGINT/SIGTERM stop the world and close the lab (every process it started, the namespaces) before exit.

    .venv/bin/python bench/partitioned_master.py [runs per timeout, default 5] [--no-write] [--quick]

`--quick`: slave_net_timeout 60 only (default: 2 and 60). Requires root (network namespaces).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.failover_mttr import write_doc
from bench.hung_master import END as HUNG_END
from bench.hung_master import STEADY_S, summary, table
from bench.stopping import run_bench
from libs.sandbox.server import ensure_template
from tests.chaos.netlab import OBSERVER, NetLab, available
from tests.chaos.world import CLUSTER_ALIAS, World, WorldSpec

BEGIN = "<!-- partitioned_master: begin (written by bench/partitioned_master.py) -->"
END = "<!-- partitioned_master: end -->"
MASTER_DC = "dcm"
TIMEOUTS = (2, 60)
SETTINGS = {"MySQLConnectTimeoutSeconds": 1, "MySQLDiscoveryReadTimeoutSeconds": 1}
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*\bactive \w+ DeadMaster\w* on ")

# Runs inside the observer namespace: one line per change of what `master/<alias>` says, stamped with
# the (machine-wide) monotonic clock; a line at start so the bench knows it polls.
POLLER = r"""
import json, sys, time, urllib.request, urllib.error
url, last = sys.argv[1], None
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            doc = json.loads(r.read())
        now = (f"{doc['Key']['Hostname']}:{doc['Key']['Port']}", doc["ReadOnly"])
    except (OSError, ValueError, KeyError, TypeError):
        now = None
    if now != last or last is None:
        print(json.dumps({"t": time.monotonic(), "master": now}), flush=True)
        last = now
    time.sleep(0.005)
"""


def _changes(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


async def _wait_new_master(path: Path, old: str, since: float, within: float) -> tuple[float, str]:
    """The first poll after `since` naming a writable master other than `old`: (its time, the master)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for change in _changes(path):
            master = change.get("master")
            t = float(change["t"])  # type: ignore[arg-type]
            if t >= since and isinstance(master, list) and master[0] != old and master[1] is False:
                return t, str(master[0])
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no new writable master in master/{CLUSTER_ALIAS} within {within:g}s")


def _first_dead_master(logs: Path, after: datetime) -> datetime | None:
    """The earliest analyzer log line announcing a DeadMaster after `after` (UTC wall clock)."""
    found: list[datetime] = []
    for log in logs.glob("analyzer-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            m = _LOG_TIME.match(line)
            if m:
                at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
                if at >= after:
                    found.append(at)
    return min(found, default=None)


async def one_run(base: Path, template: Path, net_timeout: int, i: int) -> dict[str, float]:
    run_dir = base / f"snt{net_timeout}-{i}"
    run_dir.mkdir(parents=True)
    spec = WorldSpec(
        mysql={"master": MASTER_DC, "replica1": "dc1", "replica2": "dc2", "replica3": "dc3"},
        slave_net_timeout=net_timeout,
        settings=SETTINGS,
    )
    with NetLab(dcs=("dc1", "dc2", "dc3", MASTER_DC)) as lab:
        world = World(lab, run_dir, template, spec)
        await world.start()
        try:
            old = world.server(world.sandbox.master)
            changes = run_dir / "poller.jsonl"
            url = f"{world.api_url}/api/master/{CLUSTER_ALIAS}"
            poller = await asyncio.to_thread(_spawn_poller, lab, changes, url)
            try:
                await _wait_named(changes, old, 60)
                await asyncio.sleep(STEADY_S)  # every service settled on the healthy topology
                cut_wall = datetime.now(UTC)
                cut = time.monotonic()
                lab.isolate(MASTER_DC)
                seen, new = await _wait_new_master(changes, old, cut, 90)
            finally:
                lab.stop(poller)
            detected = _first_dead_master(world.logs, cut_wall)
        finally:
            await world.stop()
    print(f"  {old} → {new}", flush=True)
    return {
        "total": seen - cut,
        "detection": (detected - cut_wall).total_seconds() if detected else float("nan"),
    }


def _spawn_poller(lab: NetLab, out: Path, url: str) -> Popen[bytes]:
    with open(out, "wb") as handle:
        return lab.spawn(OBSERVER, [sys.executable, "-c", POLLER, url], stdout=handle)


async def _wait_named(path: Path, master: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(isinstance(c.get("master"), list) and c["master"][0] == master for c in _changes(path)):  # type: ignore[index]
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the API did not name {master} within {within:g}s")


def section(results: dict[int, list[dict[str, float]]], load: tuple[float, float, float]) -> str:
    lines = [
        BEGIN,
        "### Partitioned master: the master alone cut off → `GET /api/master/<alias>`",
        "",
        "`bench/partitioned_master.py`: network namespaces (`tests/chaos/netlab.py`); dc1, dc2, dc3 each",
        "hold a nats-server (one JetStream cluster, R3), a test Consul, Baton's prober, analyzer, recovery",
        "and kvpublisher (the API in dc2) and one replica; `dcm` holds only the master (MariaDB 10.11, GTID,",
        "1 s heartbeats; poll 1 s, 1 s probe timeouts). The master's port is taken off the bridge",
        "(`isolate`) and a poller in the observer namespace asks `master/<alias>` every 5 ms until it names",
        "a new writable master (one monotonic clock for both). Detection = cut → the first analyzer's",
        "DeadMaster (log time). A fresh lab and world per run.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other work; load average at the",
        f"end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        *table(results, ("detection",)),
        "",
        f"Detection is the median of that part. The cut comes {STEADY_S:g} s after the API first named the",
        "master (the replicas' polls placed after their heartbeats, as in a running Baton).",
        "",
        END,
    ]
    return "\n".join(lines)


async def main(runs: int, write: bool, timeouts: tuple[int, ...]) -> None:
    why = available()
    if why is not None:
        raise SystemExit(f"partitioned_master: {why}")
    results: dict[int, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="baton-bench-partition-") as tmp:
        template = await asyncio.to_thread(ensure_template, Path(tmp) / "template")
        for net_timeout in timeouts:
            results[net_timeout] = []
            for i in range(runs):
                run = await one_run(Path(tmp), template, net_timeout, i)
                results[net_timeout].append(run)
                parts = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in run.items())
                print(f"slave_net_timeout {net_timeout}s run {i + 1}/{runs}: {parts}", flush=True)
    summary(results, ("detection",))
    text = section(results, os.getloadavg())
    print(text)
    if write:
        write_doc(text, BEGIN, END, after=HUNG_END)


def run() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 5
    timeouts = (60,) if "--quick" in sys.argv else TIMEOUTS
    run_bench(main(runs, "--no-write" not in sys.argv, timeouts), "partitioned_master")


if __name__ == "__main__":
    run()
