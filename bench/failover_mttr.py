"""Failover MTTR: SIGKILL the master → a new writable master published in `baton_masters`.

Each run starts a fresh 4-node MariaDB sandbox (1 master, 3 replicas, GTID) and a fresh nats-server,
runs the prober, analyzer and recovery services in this process (poll 1 s), waits until they know the
whole topology, SIGKILLs the master and waits (KV watch) for `baton_masters` to name another master.
The time is split from the recovery record's timestamps: detection (kill → analyzer's decision),
handoff (→ recovery leader starts), decision (gates, registration, re-check probe, plan), execution
(hooks + MySQL steps until the successor is writable), publication (→ baton_masters written). Writes the
`failover_mttr` section of docs/benchmarks.md.

Graceful takeover (`--graceful N`, default 12; 0 skips it): one 3-node sandbox and one stack; a client
inserts rows continuously as an unprivileged user (`tests/integration/recovery/writer.py`), and N
`graceful-master-takeover-auto` commands switch the master back and forth between the nodes. Reported:
the write outage the recovery measured (old master read_only → new master read_only=0), the command's
round trip (request → reply, all steps), and the longest gap between two acknowledged inserts the client
saw (its own discovery of the new master included); every acknowledged insert is checked on the final
master. Writes the `graceful_takeover` section.

    .venv/bin/python bench/failover_mttr.py [runs] [--graceful N] [--no-write]
"""

from __future__ import annotations

import asyncio
import logging
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.doc_sections import write_section
from bench.stopping import run_bench
from libs.bus.server import NatsServer
from libs.models.operator import CommandStatus
from libs.recovery.audit import Outcome
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.server import ensure_template
from libs.sandbox.spec import master_replicas
from tests.integration.recovery.stack import Stack
from tests.integration.recovery.writer import Writer, prepare

PHASES = ("detection", "handoff", "decision", "execution", "publication", "total")
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN = "<!-- failover_mttr: begin (written by bench/failover_mttr.py) -->"
END = "<!-- failover_mttr: end -->"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


async def one_run(base: Path, template: Path, i: int) -> dict[str, float]:
    sb = Sandbox(base / f"sb{i}", master_replicas(3), template_dir=template)
    await sb.start()
    try:
        with NatsServer(base / f"nats{i}") as nats:
            stack = await Stack(sb, nats.url).start()
            try:
                await asyncio.sleep(1.5)  # a few polls: a steady state, as in production
                timing = await stack.failover(within=20)
            finally:
                await stack.stop()
        if timing.record.outcome is not Outcome.SUCCEEDED:
            raise RuntimeError(f"run {i}: recovery {timing.record.outcome}: {timing.record.reason}")
        return timing.split()
    finally:
        await sb.stop()


def report(results: list[dict[str, float]]) -> str:
    lines = [
        BEGIN,
        "## Failover MTTR (recovery)",
        "",
        "`bench/failover_mttr.py`: SIGKILL of the master of a 4-node MariaDB 10.11 sandbox (GTID) → a new",
        "writable master published in `baton_masters` (seen by a KV watch). Prober, analyzer and recovery",
        "services in one process, one nats-server, `InstancePollSeconds` 1; fresh sandbox per run; loopback,",
        f"{platform.machine()}, 2 cores shared with other work; {len(results)} runs.",
        "Phases from the recovery record: detection = kill → analyzer decided; handoff → recovery leader",
        "started; decision = gates, registration, re-check probe, plan; execution = hooks + MySQL steps →",
        "successor writable; publication → baton_masters written; total = kill → new master seen there.",
        "",
        "| phase | median ms | p95 ms | max ms |",
        "|---|---|---|---|",
    ]
    for phase in PHASES:
        values = [r[phase] * 1000 for r in results if not math.isnan(r[phase])]
        if values:
            lines.append(
                f"| {phase} | {statistics.median(values):.1f} | {p95(values):.1f} | {max(values):.1f} |"
            )
    lines += [
        "",
        "Target (issue 5): median total ≤ 300 ms. For scale: orchestrator 3.2.6 on this machine showed a",
        "new writable master in its API ~1.7 s (median of 40 runs) after kill -9 at a 1 s poll.",
        END,
    ]
    return "\n".join(lines)


def write_doc(section: str, begin: str = BEGIN, end: str = END, after: str | None = None) -> None:
    """Replace the section between `begin` and `end`; a new one goes after the `after` marker (else at
    the end of the file)."""
    write_section(DOC, section, begin, end, after=after)


G_BEGIN = "<!-- graceful_takeover: begin (written by bench/failover_mttr.py --graceful) -->"
G_END = "<!-- graceful_takeover: end -->"
TARGET_OUTAGE_MS = 300.0
ORCHESTRATOR_MS = 520.0


async def graceful_runs(base: Path, template: Path, runs: int) -> list[dict[str, float]]:
    """`runs` takeovers back and forth on one sandbox under a continuous writer."""
    sb = Sandbox(base / "graceful", master_replicas(2), template_dir=template)
    await sb.start()
    results: list[dict[str, float]] = []
    try:
        await prepare(sb, "master")
        with NatsServer(base / "nats-graceful") as nats:
            stack = await Stack(sb, nats.url).start()
            writer = Writer([sb.key(n) for n in sb.names]).start()
            try:
                current = sb.key("master")
                for i in range(runs):
                    await asyncio.sleep(1.2)  # a few polls in the steady state (and writes)
                    await writer.wait_acked(20)
                    target = sb.key(sb.names[(sb.names.index(sb.name_of(current) or "master") + 1) % 3])
                    writer.max_gap_s = 0.0
                    started = time.monotonic()
                    reply = await stack.command(
                        "graceful-master-takeover-auto", cluster=str(current), destination=target
                    )
                    round_trip = time.monotonic() - started
                    if reply.status is not CommandStatus.OK or reply.write_outage_ms is None:
                        raise RuntimeError(f"takeover {i}: {reply.status}: {reply.message}")
                    await writer.wait_acked(20)
                    result = {
                        "outage": reply.write_outage_ms / 1000,
                        "command": round_trip,
                        "client_gap": writer.max_gap_s,
                    }
                    results.append(result)
                    shown = " ".join(f"{k}={v * 1000:.1f}ms" for k, v in result.items())
                    print(f"takeover {i + 1}/{runs}: {current} -> {target}: {shown}", flush=True)
                    current = target
                await writer.finish()
                name = sb.name_of(current) or "master"
                rows = await sb.sql(name, f"SELECT id FROM {SANDBOX_DB}.counter")
                present = {int(r["id"]) for r in rows}
                lost = [a for a in writer.acked if a not in present]
                if lost:
                    raise RuntimeError(f"{len(lost)} acknowledged inserts missing on {name}: {lost[:5]}")
                print(f"{len(writer.acked)} acknowledged inserts, all on the final master {current}")
            finally:
                await writer.finish()
                await stack.stop()
    finally:
        await sb.stop()
    return results


def graceful_report(results: list[dict[str, float]]) -> str:
    outage = statistics.median(r["outage"] for r in results) * 1000
    command = statistics.median(r["command"] for r in results) * 1000
    lines = [
        G_BEGIN,
        "### Graceful master takeover (write outage)",
        "",
        "`bench/failover_mttr.py --graceful N`: `graceful-master-takeover-auto` back and forth on one 3-node",
        "MariaDB 10.11 sandbox (GTID) while a client inserts rows continuously as an unprivileged user;",
        f"services in one process, one nats-server; loopback, {platform.machine()}, 2 shared cores; "
        f"{len(results)} takeovers.",
        "outage = what the recovery measured and reported (old master `read_only=1` sent → new master",
        "`read_only=0` returned); command = request → reply (fresh probe, plan, hooks, catch-up, switch,",
        "repoint, demote, publish); client gap = longest time between two acknowledged inserts (the",
        "client's own search for the writable node included). Every acknowledged insert was on the final",
        "master.",
        "",
        "| measure | median ms | p95 ms | max ms |",
        "|---|---|---|---|",
    ]
    for name in ("outage", "command", "client_gap"):
        values = [r[name] * 1000 for r in results]
        lines.append(f"| {name} | {statistics.median(values):.1f} | {p95(values):.1f} | {max(values):.1f} |")
    lines += [
        "",
        f"Target (issue 6): write outage ≤ {TARGET_OUTAGE_MS:.0f} ms; median {outage:.1f} ms, "
        f"ratio to target {outage / TARGET_OUTAGE_MS:.3f}.",
        "For scale: a graceful takeover by orchestrator 3.2.6 on this machine took "
        f"{ORCHESTRATOR_MS:.0f} ms end to end (one run);",
        f"Baton's command round trip (median {command:.0f} ms) is the comparable figure.",
        G_END,
    ]
    return "\n".join(lines)


async def main(runs: int, graceful: int, write: bool) -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="baton-mttr-") as tmp:
        base = Path(tmp)
        template = await asyncio.to_thread(ensure_template, base / "template")
        if graceful > 0:
            g = await asyncio.wait_for(graceful_runs(base, template, graceful), 60 + 10 * graceful)
            section = graceful_report(g)
            print(section)
            outage = statistics.median(r["outage"] for r in g) * 1000
            print(f"write outage median {outage:.1f} ms = {outage / TARGET_OUTAGE_MS:.3f}x the target")
            if write:
                write_doc(section, G_BEGIN, G_END, after=END)
        results = []
        for i in range(runs):
            started = time.monotonic()
            try:
                split = await asyncio.wait_for(one_run(base, template, i), 90)
            except TimeoutError:  # a hang: show where every task waits
                for task in asyncio.all_tasks():
                    task.print_stack(limit=6)
                raise
            results.append(split)
            shown = " ".join(f"{k}={v * 1000:.0f}ms" for k, v in split.items())
            print(f"run {i + 1}/{runs}: {shown} ({time.monotonic() - started:.1f}s)", flush=True)
    if not results:
        return
    section = report(results)
    print(section)
    if write:
        write_doc(section)


if __name__ == "__main__":
    argv = sys.argv[1:]
    graceful = 12
    if "--graceful" in argv:
        at = argv.index("--graceful")
        graceful = int(argv[at + 1])
        del argv[at : at + 2]
    args = [a for a in argv if not a.startswith("--")]
    run_bench(main(int(args[0]) if args else 20, graceful, "--no-write" not in argv), "failover_mttr")
