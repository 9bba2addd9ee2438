"""Latency from a baton_masters change to every data center's Consul holding the new master.

Starts a nats-server, three test Consul data centers (`tests/consul_server`, one process each) and
the kvpublisher as its own process (`python -m services.kvpublisher`, as deployed). The bench writes a
new MasterRecord (a new master, a higher epoch) to baton_masters, as the recovery leader does, and
times until each DC's Consul holds exactly the new keys: one Consul blocking query per DC
(`?recurse&index=`) reports each change as it lands, so no polling interval blurs the figure. Every
snapshot a blocking query returns is also checked for a mix of two masters (there must be none).

Scenarios: all DCs up; dc3 down (process stopped: connections refused); dc2 hung (SIGSTOP: connects,
never answers, each attempt costs the publisher's 5 s Consul timeout). For the last two, the figure is
the latency of the DCs that are up, and the catch-up time of the lost DC once it is back.

    .venv/bin/python bench/kv_publish_latency.py [updates] [--no-docs]

Writes its figures into its own section of docs/benchmarks.md unless --no-docs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import nats.errors  # noqa: E402

from bench.doc_sections import write_section  # noqa: E402
from bench.stopping import run_bench  # noqa: E402
from libs.bus.connection import Bus, connect  # noqa: E402
from libs.bus.provision import MASTERS, provision  # noqa: E402
from libs.bus.server import NatsServer, free_port  # noqa: E402
from libs.bus.subjects import kv_key  # noqa: E402
from libs.kv.layout import cluster_master_kv_pairs  # noqa: E402
from libs.models.events import MasterRecord  # noqa: E402
from libs.models.instance import InstanceKey  # noqa: E402
from services.kvpublisher.service import STATUS_SUBJECT  # noqa: E402
from tests.fixtures.consul import ConsulProcess  # noqa: E402

PREFIX = "mysql/master"
ALIAS = "bench"
MAIN = f"{PREFIX}/{ALIAS}"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- kv_publish_latency: begin (written by bench/kv_publish_latency.py) -->"
END = "<!-- kv_publish_latency: end -->"


def record(epoch: int) -> MasterRecord:
    host = "db-a.example.com" if epoch % 2 else "db-b.example.com"
    return MasterRecord(
        cluster="db-a.example.com:3306",
        alias=ALIAS,
        master=InstanceKey(host=host, port=3306),
        epoch=epoch,
        ipv4=f"10.0.0.{epoch % 2 + 1}",
    )


class Arrivals:
    """One blocking-query loop per DC: when each epoch first became visible there."""

    def __init__(self, dc: ConsulProcess) -> None:
        self.dc = dc
        self.seen: dict[int, float] = {}
        self.mixed = 0
        self.changed = asyncio.Event()

    async def run(self) -> None:
        index = 0
        async with httpx.AsyncClient(base_url=self.dc.url, timeout=15) as http:
            while True:
                try:
                    params = {"recurse": "", "index": str(index), "wait": "10s"}
                    resp = await http.get(f"/v1/kv/{MAIN}", params=params)
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # the DC is down: try again
                    index = 0
                    continue
                now = time.monotonic()
                index = int(resp.headers.get("X-Consul-Index", "0"))
                if resp.status_code != 200:
                    continue
                tree = {
                    e["Key"]: base64.b64decode(e["Value"]).decode() if e["Value"] else "" for e in resp.json()
                }
                epoch = int(tree.get(f"{MAIN}/baton-epoch", "-1"))
                if tree != cluster_master_kv_pairs(record(epoch), PREFIX):
                    self.mixed += 1
                    continue
                self.seen.setdefault(epoch, now)
                self.changed.set()

    async def wait(self, epoch: int, within_s: float) -> float:
        deadline = time.monotonic() + within_s
        while epoch not in self.seen:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.dc.name} never showed epoch {epoch}")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass
        return self.seen[epoch]


async def put(bus: Bus, epoch: int) -> float:
    kv = await bus.js.key_value(MASTERS)
    start = time.monotonic()
    await kv.put(kv_key(ALIAS), record(epoch).model_dump_json().encode())
    return start


async def wait_ready(bus: Bus) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            reply = await bus.nc.request(STATUS_SUBJECT, b"", timeout=0.5)
            if json.loads(reply.data)["ready"]:
                return
        except (nats.errors.Error, TimeoutError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the kvpublisher never became ready")


async def run_updates(bus: Bus, watch: Sequence[Arrivals], first_epoch: int, updates: int) -> list[float]:
    """Write `updates` records; for each, ms until every watched DC holds it."""
    latencies = []
    for epoch in range(first_epoch, first_epoch + updates):
        start = await put(bus, epoch)
        done = await asyncio.gather(*(a.wait(epoch, 10) for a in watch))
        latencies.append((max(done) - start) * 1000)
        await asyncio.sleep(0.02)
    return latencies


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": p95,
        "max": max(values),
    }


def seed(dc: ConsulProcess) -> None:
    """One unrelated write, so the first publish does not get X-Consul-Index 1.

    The test Consul answers an absent prefix with index 1 and gives the first write index 1 too, so a
    blocking query issued between the two would sleep through that write (a real Consul's raft log
    never starts there).
    """
    httpx.put(f"{dc.url}/v1/kv/bench-seed", content=b"1").raise_for_status()


def start_publisher(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.kvpublisher", "--config", str(config)],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )


async def bench(updates: int, work: Path) -> dict[str, object]:
    dcs = [ConsulProcess(f"dc{i}", free_port(), work / f"dc{i}") for i in (1, 2, 3)]
    for dc in dcs:
        dc.data_dir.mkdir()
        dc.spawn()
    for dc in dcs:
        dc.wait_ready()
        seed(dc)
    nats_dir = work / "nats"
    nats_dir.mkdir()
    results: dict[str, object] = {}
    publisher: subprocess.Popen[bytes] | None = None
    with NatsServer(nats_dir) as server:
        try:
            config = work / "baton.json"
            config.write_text(
                json.dumps(
                    {
                        "BatonNatsURLs": [server.url],
                        "BatonConsulDataCenters": {dc.name: {"Address": dc.address} for dc in dcs},
                    }
                )
            )
            async with await connect(server.url, "kv-bench") as bus:
                await provision(bus.js)
                publisher = start_publisher(config, work / "publisher.log")
                await wait_ready(bus)
                arrivals = [Arrivals(dc) for dc in dcs]
                tasks = [asyncio.create_task(a.run()) for a in arrivals]
                await run_updates(bus, arrivals, 1, 3)  # warm-up
                epoch = 4

                results["all up"] = summary(await run_updates(bus, arrivals, epoch, updates))
                epoch += updates

                dcs[2].stop()
                results["dc3 down"] = summary(await run_updates(bus, arrivals[:2], epoch, updates))
                epoch += updates
                dcs[2].start()
                back = time.monotonic()
                caught = await arrivals[2].wait(epoch - 1, 30)
                results["dc3 catch-up after restart (ms)"] = (caught - back) * 1000

                assert dcs[1].pid is not None
                os.kill(dcs[1].pid, signal.SIGSTOP)
                try:
                    hung = await run_updates(bus, [arrivals[0], arrivals[2]], epoch, updates)
                    results["dc2 hung"] = summary(hung)
                    epoch += updates
                finally:
                    os.kill(dcs[1].pid, signal.SIGCONT)
                back = time.monotonic()
                caught = await arrivals[1].wait(epoch - 1, 30)
                results["dc2 catch-up after SIGCONT (ms)"] = (caught - back) * 1000
                results["mixed snapshots seen"] = sum(a.mixed for a in arrivals)
                for task in tasks:
                    task.cancel()
        finally:
            if publisher is not None:
                publisher.send_signal(signal.SIGTERM)
                results["publisher exit code after SIGTERM"] = publisher.wait(10)
            for dc in dcs:
                dc.stop()
    return results


def render(results: dict[str, object], updates: int) -> str:
    lines = [
        "## KV publish latency (kvpublisher)",
        "",
        "`bench/kv_publish_latency.py`: a new MasterRecord written to baton_masters → every DC's Consul",
        "holding the new keys (seen by a Consul blocking query per DC). kvpublisher as its own process,",
        "three test Consul DCs (`tests/consul_server`) as processes, one nats-server; all on loopback,",
        f"{platform.machine()}, {os.cpu_count()} cores shared with other work; {updates} updates per row.",
        "",
        "| scenario | DCs timed | median ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    timed = {"all up": "dc1, dc2, dc3", "dc3 down": "dc1, dc2", "dc2 hung": "dc1, dc3"}
    for name, who in timed.items():
        s = results[name]
        assert isinstance(s, dict)
        lines.append(f"| {name} | {who} | {s['median']:.1f} | {s['p95']:.1f} | {s['max']:.1f} |")
    lines += [
        "",
        f"- dc3 (stopped, then started with its old data) held the newest record "
        f"{results['dc3 catch-up after restart (ms)']:.0f} ms after it answered again "
        "(retry backoff caps at 5 s).",
        f"- dc2 (SIGSTOP, 5 s Consul timeout) held it {results['dc2 catch-up after SIGCONT (ms)']:.0f} ms "
        "after SIGCONT.",
        f"- Mixed old/new snapshots seen by the blocking readers: {results['mixed snapshots seen']}.",
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    write_section(DOCS, f"{BEGIN}\n{section}\n{END}", BEGIN, END)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    updates = int(args[0]) if args else 60
    with tempfile.TemporaryDirectory(prefix="kv-bench-") as tmp:
        results = run_bench(bench(updates, Path(tmp)), "kv_publish_latency")
    for name, value in results.items():
        if isinstance(value, dict):
            print(
                f"{name:>10}: median {value['median']:.1f} ms  p95 {value['p95']:.1f} ms  "
                f"max {value['max']:.1f} ms  (n={value['n']})"
            )
        else:
            print(f"{name}: {value if isinstance(value, int) else f'{value:.0f}'}")
    section = render(results, updates)
    if "--no-docs" not in sys.argv:
        write_docs(section)
        print(f"wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
