"""Master discovery latency: SIGKILL the master → `GET /api/master/<alias>` names a new writable master.

What an application or a proxy that asks the API "who is the master of `ci`" waits for after a crash:
detection, failover, publication, then the read model showing the new topology. Each run starts
`baton up --sandbox` (embedded NATS, SQLite, a 4-node MariaDB sandbox; `DetectClusterAliasQuery`
= `SELECT 'bench'`) as one subprocess, waits until the API names the master, SIGKILLs it and polls
`master/bench` every 5 ms until it names another server with `ReadOnly: false`. Runs at
InstancePollSeconds 1 and 5: the API must not wait for the next poll (the recovery asks the probers
for fresh snapshots of every instance it touched). Writes the `master_discovery` section of
docs/benchmarks.md. SIGINT/SIGTERM stop the current `baton up` (and so its sandbox) before exiting.

    .venv/bin/python bench/master_discovery.py [runs per poll, default 10] [--no-write]
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.failover_mttr import END as MTTR_END
from bench.failover_mttr import p95, write_doc
from bench.stopping import run_bench
from tests.integration.e2e.test_baton_up import run_baton_up, sandbox_master, wait_until

BEGIN = "<!-- master_discovery: begin (written by bench/master_discovery.py) -->"
END = "<!-- master_discovery: end -->"
POLLS = (1, 5)
TARGET_S = 0.3


def _key(doc: dict[str, Any]) -> str:
    return f"{doc['Key']['Hostname']}:{doc['Key']['Port']}"


async def _master(http: httpx.AsyncClient) -> dict[str, Any] | None:
    try:
        r = await http.get("/api/master/bench")
    except httpx.TransportError:
        return None
    return r.json() if r.status_code == 200 else None


async def discovered(http: httpx.AsyncClient, state: Path) -> tuple[str, int]:
    """Wait until the API shows the whole sandbox and names the master of `bench`, then let every
    service settle; the master's address and pid."""

    async def whole() -> bool:
        try:
            r = await http.get("/api/cluster/bench")
        except httpx.TransportError:
            return False
        return r.status_code == 200 and len(r.json()) == 4

    await wait_until("the sandbox discovered", whole, 120, 0.2)
    master, pid = sandbox_master(state)
    await wait_until("the master of bench", lambda: _master(http), 30, 0.1)
    await asyncio.sleep(1.5)  # the liveness watch and every service settled
    return master, pid


async def one_run(base: Path, poll: int, i: int) -> float:
    run_dir = base / f"poll{poll}-{i}"
    run_dir.mkdir(parents=True)
    config = {"DetectClusterAliasQuery": "SELECT 'bench'", "InstancePollSeconds": poll}
    async with (
        run_baton_up(run_dir, config) as (api, state),
        httpx.AsyncClient(base_url=api, timeout=5) as http,
    ):
        master, pid = await discovered(http, state)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        async def moved() -> bool:
            doc = await _master(http)
            return doc is not None and _key(doc) != master and doc["ReadOnly"] is False

        await wait_until("a new writable master in master/bench", moved, 30, 0.005)
        return time.monotonic() - killed


def section(results: dict[int, list[float]], load: tuple[float, float, float]) -> str:
    lines = [
        BEGIN,
        "## Master discovery: kill -9 → `GET /api/master/<alias>` names the new writable master",
        "",
        "`bench/master_discovery.py`: `baton up --sandbox` (one process: embedded NATS, SQLite read model,",
        "4-node MariaDB 10.11 sandbox, every service), alias from `DetectClusterAliasQuery`; the master is",
        "SIGKILLed and `master/<alias>` is polled every 5 ms. Everything an API client waits for: detection,",
        "failover, publication, fresh probes of the instances involved, projection into the read model.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        "| InstancePollSeconds | runs | median | p95 | max | target |",
        "|---|---|---|---|---|---|",
    ]
    for poll, values in results.items():
        ms = [v * 1e3 for v in values]
        lines.append(
            f"| {poll} | {len(ms)} | {statistics.median(ms):.0f} ms | {p95(ms):.0f} ms | {max(ms):.0f} ms "
            f"| ≤ {TARGET_S * 1e3:.0f} ms median |"
        )
    lines += ["", END]
    return "\n".join(lines)


async def main(runs: int, write: bool) -> None:
    results: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="baton-bench-discovery-") as tmp:
        for poll in POLLS:
            results[poll] = []
            for i in range(runs):
                elapsed = await one_run(Path(tmp), poll, i)
                results[poll].append(elapsed)
                print(f"poll {poll}s run {i + 1}/{runs}: {elapsed * 1e3:.0f} ms", flush=True)
    for poll, values in results.items():
        median = statistics.median(values)
        print(
            f"poll {poll}s: median {median * 1e3:.0f} ms, p95 {p95(values) * 1e3:.0f} ms "
            f"(target {TARGET_S * 1e3:.0f} ms: ratio {median / TARGET_S:.2f})"
        )
    text = section(results, os.getloadavg())
    print(text)
    if write:
        write_doc(text, BEGIN, END, after=MTTR_END)


def guarded_run(main: Callable[[int, bool], Awaitable[None]], default_runs: int, name: str) -> None:
    """`main(runs, write)` from the command line (`[runs] [--no-write]`), under `run_bench`: SIGINT,
    SIGTERM and SIGHUP cancel it, which unwinds what it started (`run_baton_up`: SIGTERM to baton up)."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else default_runs
    run_bench(main(runs, "--no-write" not in sys.argv), name)


def run() -> None:
    guarded_run(main, 10, "master_discovery")


if __name__ == "__main__":
    run()
