"""What `bench/fleet_scale.py --sizes` writes: the figures of every size as JSON, the cost-versus-size
plot (docs/fleet_scale.png) and the "Fleet scale" section of docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.doc_sections import write_section

BEGIN = "<!-- fleet_scale: begin (written by bench/fleet_scale.py --sizes) -->"
END = "<!-- fleet_scale: end -->"
AFTER = "<!-- analysis_scale: end -->"
DETECTION_TARGET_S = 0.3
PROBES_PER_CORE_TARGET = 2000.0
SERVICES = ("prober1", "prober2", "analyzer", "recovery", "api")


def _probers(r: dict[str, Any]) -> list[dict[str, Any]]:
    return list(r["workers"].values())


def cpu_ms_per_probe(r: dict[str, Any]) -> float | None:
    """All prober workers' CPU over all their probes (ms)."""
    probes = sum(w["probes"] for w in _probers(r))
    cpu = sum(w["cpu_s"] for w in _probers(r))
    return 1000 * cpu / probes if probes else None


def _partly(r: dict[str, Any]) -> str:
    """` (993 of 1,000)` when the measurement began before every instance had been probed."""
    seen = r.get("probed_reachable_at_start", r["instances"])
    return "" if seen >= r["instances"] else f" ({seen:,} of {r['instances']:,})"


def _fmt(v: float | None, digits: int = 0, unit: str = "") -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}{unit}"


def _load(r: dict[str, Any]) -> str:
    return f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f}"


def _detections(r: dict[str, Any]) -> int:
    d = r["jetstream"]["BATON_DETECTIONS"]
    mean: int = d["mean_message_bytes"] or 1
    added: int = d["bytes_after"] - d["bytes_before"]
    return round(added / mean)


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["instances"] for r in results]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4.2))
    for name in sorted({n for r in results for n in r["workers"]}):
        ax1.plot(sizes, [r["workers"][name]["cpu_ms_per_probe"] for r in results], "o-", label=name)
    ax1.plot(sizes, [cpu_ms_per_probe(r) for r in results], "k--", label="probers together")
    ax1.plot(sizes, [r["simulator_cpu_ms_per_probe"] for r in results], "s:", label="simulator (answering)")
    ax1.axhline(1000 / PROBES_PER_CORE_TARGET, color="r", lw=0.8, label="target (2,000/s/core)")
    ax1.set(title="CPU per probe", xlabel="instances", ylabel="ms CPU per probe", ylim=(0, None))
    ax1.legend(fontsize=7)
    for name in SERVICES:
        if any(name in r["rss_mib"] for r in results):
            ax2.plot(sizes, [r["rss_mib"].get(name) for r in results], "o-", label=name)
    ax2.set(title="Resident memory per service", xlabel="instances", ylabel="MiB", ylim=(0, None))
    ax2.legend(fontsize=7)
    det = [(r["instances"], float(r["detection_s"])) for r in results if r.get("detection_s") is not None]
    ax3.plot([n for n, _ in det], [1000 * s for _, s in det], "o-", label="DeadMaster detection")
    ticks = [(r["instances"], r["analyzer_tick"].get("median_ms")) for r in results]
    ax3.plot([n for n, v in ticks if v], [v for _, v in ticks if v], "s:", label="analyzer tick (median)")
    ax3.axhline(1000 * DETECTION_TARGET_S, color="r", lw=0.8, label="detection target 300 ms")
    ax3.set(
        title="Detection latency (one kill) and tick cost", xlabel="instances", ylabel="ms", ylim=(0, None)
    )
    ax3.legend(fontsize=7)
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(sizes)
        ax.grid(alpha=0.3)
    fig.suptitle("Baton against a simulated fleet (bench/fleet_scale.py; 2 cores shared with the fleet)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def section(every: list[dict[str, Any]], *, kill_master: bool, api: bool) -> str:
    results = [r for r in every if "error" not in r]
    failed = [r for r in every if "error" in r]
    r0 = results[0]
    rows = []
    for r in results:
        js = r["jetstream"]
        tick = r["analyzer_tick"]
        lag = r.get("api_read_model_lag") or {}
        per_probe = cpu_ms_per_probe(r)
        workers = " / ".join(
            f"{w['probes_per_s']:,.0f} @ {w['cpu_ms_per_probe']:.2f}" if w["cpu_ms_per_probe"] else "—"
            for w in _probers(r)
        )
        rows.append(
            f"| {r['instances']:,} | {r['clusters']:,} | {r['simulator_processes']} "
            f"| {r['poll_s']:g} | {r['discovered_s']:.1f}{_partly(r)} "
            f"| {r['snapshots_per_s']:,.0f} | {workers} | {_fmt(per_probe, 2)} "
            f"| {_fmt(1000 / per_probe if per_probe else None)} | {r['simulator_cpu_ms_per_probe']:.2f} "
            f"| {' / '.join(_fmt(r['rss_mib'].get(s)) for s in SERVICES if s in r['rss_mib'])} "
            f"| {_fmt(tick.get('median_ms'), 1)} / {_fmt(tick.get('max_ms'), 1)}, "
            f"{_fmt(tick.get('cpu_median_ms'), 1)} "
            f"| {_fmt(lag.get('median_ms'))} / {_fmt(lag.get('p95_ms'))} ({lag.get('samples', 0)}) "
            f"| {_fmt(js['BATON_SNAPSHOTS']['written_mib_per_hour'], 0)} "
            f"| {_fmt(1000 * r['detection_s'] if r.get('detection_s') is not None else None)} "
            f"| {_fmt(r.get('failover_s'), 2, ' s')} | {_load(r)} |"
        )
    services = " / ".join(s for s in SERVICES if s in r0["rss_mib"])
    big = results[-1]
    snaps = big["jetstream"]["BATON_SNAPSHOTS"]
    capped_mib = snaps["mean_message_bytes"] * 5 * big["instances"] / 2**20
    per_core = [1000 / p for p in (cpu_ms_per_probe(r) for r in results) if p]
    det = [float(r["detection_s"]) for r in results if r.get("detection_s") is not None]
    met_core = per_core and min(per_core) >= PROBES_PER_CORE_TARGET
    with_api = " and the API with its read model" if api else ""
    lines = [
        BEGIN,
        "## Fleet scale: the whole pipeline against a simulated fleet (issue 18)",
        "",
        "`bench/fleet_scale.py --sizes ...`: the fleet simulator (`bench/fleetsim`: clusters of 1 master "
        "+ 2 to 8 replicas, some chains, each instance its own loopback port), one nats-server, two "
        f"prober workers sharing the shards, the analyzer, the recovery{with_api}, each its own process on "
        "one 2-core x86_64 machine that also runs the simulator (and other work: see the load column). "
        f"{r0['measure_s']:.0f} s measured per size once the whole fleet was probed; one run per size. "
        "Figures: `docs/fleet_scale.json`; plot: `docs/fleet_scale.png`.",
        "",
        "| instances | clusters | sim procs | poll s | all probed after s | snapshots/s "
        "| per worker: probes/s @ CPU ms/probe | probers CPU ms/probe | probes/s/core "
        f"| simulator CPU ms/probe | RSS MiB ({services}) | analyzer tick ms: wall median / max, CPU median "
        "| snapshot → API ms median / p95 (samples) | BATON_SNAPSHOTS written MiB/h "
        "| DeadMaster detection ms | failover | load (1-min) |",
        "|" + "---:|" * 17,
        *rows,
        "",
        "![cost versus fleet size](fleet_scale.png)",
        "",
        "- **CPU per probe**: a prober worker's user+system CPU over the window divided by the snapshots "
        "it published: probe and JetStream publish, and everything else the process does (liveness "
        "watch, probe-now answers, shard leases, registry, discovery). The simulator's own cost to answer "
        "is shown apart.",
        "- **Analyzer tick**: one round that re-analyses every cluster (each second; the "
        "`baton.analyzer.tick` DEBUG line): its wall time, and the analyzer process's CPU over it, which "
        "includes the snapshots folded in while the round waits on its publishes. Where that CPU goes "
        "at 5,000 instances (py-spy): `Fleet.fold` regrouping the whole fleet (`group_clusters`, "
        "O(fleet)) on every snapshot that adds an instance or changes one's master, so discovering a "
        "fleet cost O(fleet²) (seen here, 2026-12-03, loaded machine: during the discovery of 5,000 "
        "instances, tick rounds of 31 to 34 s wall, 9 to 10 s CPU, at 2,400 to 2,700 instances known). "
        "Fixed since: only the clusters an instance leaves or joins are regrouped (`bench/fleet_fold.py`: "
        "5,000 instances folded in 0.25 s instead of 173 s); the figures above predate the fix.",
        "- **Snapshot → API**: `GET /api/instance/<host>/<port>` polled every "
        f"{(r0.get('api_read_model_lag') or {}).get('poll_ms', 50)} ms for a few instances; from the "
        "probe time (`BatonLastProbeAt`) to the midpoint of the polls around its first showing.",
        "- **JetStream storage**: BATON_SNAPSHOTS is written at the rate in the table, but keeps 5 "
        "snapshots per instance for 1 h at most, so its size levels off at about "
        f"{capped_mib:,.0f} MiB at {big['instances']:,} instances ({snaps['mean_message_bytes']:,} "
        "bytes per snapshot stored). BATON_DETECTIONS, BATON_RECOVERIES and BATON_AUDIT (30 to 90 days) "
        "grow only with detections, recoveries and audit events: "
        + ", ".join(
            f"{name} {big['jetstream'][name]['stored_growth_mib_per_hour']:g} MiB/h"
            for name in ("BATON_DETECTIONS", "BATON_RECOVERIES", "BATON_AUDIT")
        )
        + f" at {big['instances']:,} instances, over the window (before any kill).",
    ]
    lines.append(
        "- **Besides probing**: probe-now requests from the analyzer (each answered by every worker; "
        "`anyone` = a holder did not answer in time, so every worker probes those instances on a "
        "fresh connection and returns them unpublished) and detection messages written, per size: "
        + "; ".join(
            f"{r['instances']:,}: {r['probe_now'].get('requests', 0) / r['measure_s']:.1f} requests/s "
            f"({r['probe_now'].get('anyone', 0) / r['measure_s']:.1f} `anyone`), "
            f"{_detections(r)} detection messages"
            for r in results
            if "probe_now" in r
        )
        + " over the window. The simulated fleet is healthy (no instance is made to fail before the "
        "kill): these come from late answers."
    )
    loads = [
        x
        for r in every
        for x in (r.get("loadavg_before", [])[:1] + r.get("loadavg_after", [])[:1] + r.get("loadavg", [])[:1])
    ]
    cores = r0.get("cpu_count") or 2
    if loads and max(loads) > 2 * cores:
        lines.append(
            f"- **Overloaded machine**: the 1-minute load reached {max(loads):.1f} on {cores} cores during "
            "some of these runs (other work shared the machine: load column). Starved of CPU, probes and "
            "acks run late, shard leases lapse (the workers' logs), probe-now requests pile up and the "
            "analyzer raises dead-master alarms that clear again (the bullet above): in the runs where "
            "that happened, the CPU per probe, the tick costs, the API lag and the memory are those of a "
            "starved pipeline, not its cost on a quiet machine."
        )
    for r in failed:
        lines.append(
            f"- **{r['instances']:,} instances: not measured** (poll {r['poll_s']:g} s, load "
            f"{r['loadavg'][0]:.1f} at its start): {r['error']}."
        )
    if kill_master:
        lines.append(
            "- **Detection / failover**: one master killed through the simulator (its port stops answering) "
            "→ the DeadMaster `detection.active` event, and → another member writable with every live "
            "member replicating from it, as the simulated cluster shows it. One kill per size: no median."
        )
        for r in results:
            if r.get("detection_error"):
                lines.append(f"- {r['instances']:,} instances, no detection: {r['detection_error']}.")
    verdicts = []
    if det:
        verdicts.append(
            f"detection ≤ 300 ms: {'met' if max(det) <= DETECTION_TARGET_S else 'missed'} where measured "
            f"({', '.join(f'{1000 * d:.0f} ms' for d in det)}; one kill per size, so not a median)"
        )
    if per_core:
        verdicts.append(
            f"≥ 2,000 probes/s per core for a whole prober worker next to the fleet: "
            f"{'met' if met_core else 'not met'} ({', '.join(f'{c:,.0f}' for c in per_core)}/s/core)"
        )
    if kill_master and not any(r["instances"] >= 10_000 and r.get("detection_s") for r in results):
        verdicts.append("detection at 10,000 instances ≤ 300 ms median: not measured here")
    if verdicts:
        lines.append("- Targets (issue 18): " + "; ".join(verdicts) + ".")
    lines.append(END)
    return "\n".join(lines)


def save_results(results: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet_scale.json").write_text(json.dumps(results, indent=2) + "\n")


def write_report(results: list[dict[str, Any]], out: Path, *, kill_master: bool, api: bool) -> None:
    save_results(results, out)
    plot([r for r in results if "error" not in r], out / "fleet_scale.png")
    write_section(
        out / "benchmarks.md", section(results, kill_master=kill_master, api=api), BEGIN, END, after=AFTER
    )
    print(f"fleet_scale: wrote fleet_scale.json, fleet_scale.png and benchmarks.md in {out}")


def report_from(results_json: Path, out: Path, *, kill_master: bool, api: bool) -> None:
    """The report again from a JSON that `--sizes` wrote."""
    write_report(json.loads(results_json.read_text()), out, kill_master=kill_master, api=api)
