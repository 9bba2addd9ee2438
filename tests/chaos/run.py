"""The chaos matrix: every scenario (or those named) N times, a table of results in docs/reliability.md.

    sudo .venv/bin/python -m tests.chaos.run [--runs 5] [--scenario NAME ...] [--no-write]

Each run is a fresh three-DC world (tests/chaos/scenarios.py) in a fresh lab; a failed run keeps its
logs under the printed directory. SIGINT/SIGTERM stop the current run (its processes, namespaces and
sandbox) before exiting. Needs root (network namespaces); `make chaos` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from libs.aio import Interrupted, run_interruptible
from libs.sandbox.server import ensure_template
from tests.chaos.netlab import NetLab, available
from tests.chaos.scenarios import SCENARIOS, RunResult, run_scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BEGIN, END = "<!-- chaos: begin (written by tests/chaos/run.py) -->", "<!-- chaos: end -->"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def table(results: dict[str, list[RunResult]], runs: int, load: tuple[float, float, float]) -> str:
    lines = [
        BEGIN,
        "## Chaos matrix",
        "",
        f"`python -m tests.chaos.run --runs {runs}`: each run a fresh world of three DC namespaces (NATS R3,",
        "a test Consul and Baton's services per DC, MariaDB master + replica in dc1 and a replica in dc2 and",
        "dc3), the fault, then the checker (tests/chaos/invariants.py) over the observer's sampling rounds.",
        f"Machine: 2 cores; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        "| scenario | what | runs | invariants held | converge median s | converge p95 s | failed checks |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in results.items():
        held = sum(r.ok for r in rs)
        times = [r.converge_s for r in rs if r.converge_s is not None]
        median = f"{statistics.median(times):.2f}" if times else "-"
        p95 = f"{_p95(times):.2f}" if times else "-"
        failed = Counter(c.name for r in rs for c in r.verdict.failed())
        failures = ", ".join(f"{k} x{v}" for k, v in failed.items()) or "none"
        what = SCENARIOS[name].what
        lines.append(f"| {name} | {what} | {len(rs)} | {held}/{len(rs)} | {median} | {p95} | {failures} |")
    details = [
        f"- {name}: {c.name}: {c.detail}"
        for name, rs in results.items()
        for r in rs
        for c in r.verdict.failed()
    ]
    if details:
        lines += ["", "What failed, per run:", *details[:60]]
    lines.append(END)
    return "\n".join(lines)


def write_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Reliability\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{section}{tail}"
    else:
        text = f"{text.rstrip()}\n\n{section}\n"
    DOC.write_text(text)


async def matrix(names: list[str], runs: int, base: Path) -> dict[str, list[RunResult]]:
    template = await asyncio.to_thread(ensure_template, base / "template")
    results: dict[str, list[RunResult]] = {}
    for name in names:
        for i in range(runs):
            run_dir = base / f"{name}-{i + 1}"
            run_dir.mkdir()
            started = time.monotonic()
            with NetLab() as lab:
                result = await run_scenario(lab, run_dir, template, SCENARIOS[name])
            results.setdefault(name, []).append(result)
            verdict = "ok" if result.ok else "FAILED: " + ", ".join(c.name for c in result.verdict.failed())
            took = time.monotonic() - started
            converge = f"{result.converge_s:.2f}s" if result.converge_s is not None else "never"
            print(f"{name} {i + 1}/{runs}: {verdict}; converged {converge}; run {took:.0f}s", flush=True)
            for c in result.verdict.checks:
                if c.ok and c.detail and c.name.startswith("semi-sync"):  # the writer's ledger
                    print(f"  {c.name}: {c.detail}", flush=True)
            if result.ok:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                print(f"  logs kept in {result.logs}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), default=[])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    why = available()
    if why is not None:
        print(f"chaos: cannot run here: {why}", file=sys.stderr)
        return 2
    names = args.scenario or list(SCENARIOS)
    base = Path(tempfile.mkdtemp(prefix="baton-chaos-"))
    try:
        results = run_interruptible(matrix(names, args.runs, base))
    except Interrupted as exc:
        print(f"chaos: {exc}; the current run was stopped", file=sys.stderr)
        return exc.exit_code
    section = table(results, args.runs, os.getloadavg())
    print(section)
    if not args.no_write:
        write_doc(section)
    return 0 if all(r.ok for rs in results.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
