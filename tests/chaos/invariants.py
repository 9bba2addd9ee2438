"""The one checker every chaos run ends with: pure, over what the run's observers recorded.

Observers (running in the observer namespace, never in the root one) sample every MySQL server of the
cluster in rounds during the whole run, record the writer's acknowledged ids, read Consul in each DC and
Baton's recovery records. The checker turns that into named verdicts:

- `one-writable-master`: in no sampling round are two servers writable (`read_only=OFF`) that had both
  been answering for longer than `fence_grace_s`. A failed master that comes back writable is made
  read-only by Baton's fence watch within 0.2 s of accepting connections (issue 11); the grace covers
  that window and one sampling interval, nothing more. Every round breaking it is reported.
- `replicas-follow-master`: at the end, every answering server but the master replicates from the
  master with both threads running (directly, or through intermediate masters that do) — except the
  replicas Baton itself reported lost (LostReplicas), which must then not replicate from the master
  (`lost-means-lost`), and failed masters that came back (fenced read-only and left alone, as
  orchestrator leaves them).
- `no-errant-gtids`: at the end, no answering server holds a GTID the master lacks.
- `acked-writes-kept`: every id the writer saw acknowledged is on the final master.
- `audit-agrees`: the newest closed master recovery names the master MySQL shows (when one ran; an
  intermediate master's recovery names the server its replicas moved under).
- `consul-names-master`: every reachable DC's Consul names the final master (`host:port`).
- `converged`: from the end of the fault, the first round in which the whole state was right (one
  writable server, everyone following it, every DC's Consul answering and naming it) came within
  `converge_within_s`.

Times are the observer's monotonic clock, in seconds; no wall clock is compared across processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from libs.topology.gtid import raw_mariadb_errant


@dataclass(frozen=True)
class ServerSample:
    """One server as an observer saw it in one round (`reachable=False`: no answer within the bound)."""

    server: str  # host:port
    reachable: bool
    read_only: bool | None = None
    master: str | None = None  # host:port it replicates from, None if no replication configured
    io_running: bool = False
    sql_running: bool = False
    gtid_pos: str = ""  # MariaDB gtid_current_pos (or MySQL gtid_executed)


@dataclass(frozen=True)
class Round:
    at: float  # monotonic seconds when the round started
    servers: Mapping[str, ServerSample]
    consul: Mapping[str, str | None] = field(default_factory=dict)  # DC → master value (None: unreachable)


@dataclass(frozen=True)
class RecoveryOutcome:
    successor: str | None
    lost_replicas: frozenset[str] = frozenset()
    closed: bool = True
    failed: str | None = None  # the failed master: once back, kept read-only, not repointed (orchestrator)
    of_master: bool = True  # False: an intermediate master's recovery (its successor is no master)


@dataclass(frozen=True)
class Observations:
    rounds: Sequence[Round]
    fault_ended_at: float
    acked_ids: frozenset[int] = frozenset()
    final_master_ids: frozenset[int] | None = None  # None: no writer in this scenario
    recoveries: Sequence[RecoveryOutcome] = ()  # oldest first


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]
    converge_s: float | None  # None: never converged

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def writable(round_: Round) -> list[str]:
    return sorted(s.server for s in round_.servers.values() if s.reachable and s.read_only is False)


def _answering_since(rounds: Sequence[Round]) -> list[dict[str, float]]:
    """Per round: since when each answering server has answered without a gap (its first round)."""
    since: dict[str, float] = {}
    out = []
    for r in rounds:
        for name, s in r.servers.items():
            if s.reachable:
                since.setdefault(name, r.at)
            else:
                since.pop(name, None)
        out.append({k: v for k, v in since.items() if r.servers.get(k) and r.servers[k].reachable})
    return out


def check_one_writable(rounds: Sequence[Round], fence_grace_s: float) -> Check:
    bad = []
    for r, since in zip(rounds, _answering_since(rounds), strict=True):
        settled = [w for w in writable(r) if r.at - since[w] > fence_grace_s]
        if len(settled) > 1:
            bad.append(f"t={r.at:.2f}s {', '.join(settled)}")
    return Check("one-writable-master", not bad, "; ".join(bad[:5]) + (" …" if len(bad) > 5 else ""))


def _topology_right(r: Round, excused: frozenset[str]) -> tuple[bool, str, str | None]:
    """One writable server and every other answering one following it: (ok, why not, the master)."""
    masters = writable(r)
    if len(masters) != 1:
        return False, f"{len(masters)} writable: {masters}", None
    master = masters[0]
    for s in r.servers.values():
        if not s.reachable or s.server == master or s.server in excused:
            continue
        if not _follows(r, s, master, excused):
            threads = f"io={s.io_running} sql={s.sql_running}"
            return False, f"{s.server} replicates from {s.master} {threads}", master
    return True, "", master


def _follows(r: Round, s: ServerSample, master: str, excused: frozenset[str]) -> bool:
    """`s` replicates (both threads running) from `master`, directly or through answering, read-only
    intermediate masters that do so themselves (a chain: a replica under a replica)."""
    seen = {s.server}
    while s.io_running and s.sql_running and s.master is not None:
        if s.master == master:
            return True
        upper = r.servers.get(s.master)
        if upper is None or not upper.reachable or upper.server in seen or upper.server in excused:
            return False
        seen.add(upper.server)
        s = upper
    return False


def _consul_wrong(r: Round, master: str | None) -> dict[str, str]:
    """The reachable DCs whose Consul does not name `master`."""
    return {dc: v for dc, v in r.consul.items() if v is not None and v != master}


def _converged(r: Round, excused: frozenset[str]) -> bool:
    """Converged: the topology is right and every DC's Consul answers and names the master (after the
    fault every DC is back, so a Consul that does not answer is not converged yet)."""
    ok, _, master = _topology_right(r, excused)
    return ok and not _consul_wrong(r, master) and None not in r.consul.values()


def check(obs: Observations, *, fence_grace_s: float = 0.5, converge_within_s: float = 10.0) -> Verdict:
    if not obs.rounds:
        return Verdict((Check("observed", False, "no sampling round recorded"),), None)
    last = obs.rounds[-1]
    closed = [r for r in obs.recoveries if r.closed]
    # the replicas lost by the newest recovery that acted (one closed later as "already fixed" or
    # skipped, e.g. a detection from before the rejoin, names no successor and loses nothing)
    acted = [r for r in closed if r.successor is not None]
    lost = acted[-1].lost_replicas if acted else frozenset()
    # a failed master that comes back is fenced read-only and left alone (as orchestrator leaves it):
    # it need not follow the new master; `one-writable-master` already holds it to read-only
    excused = lost | {r.failed for r in closed if r.failed is not None}
    checks = [check_one_writable(obs.rounds, fence_grace_s)]

    ok, why, master = _topology_right(last, excused)
    checks.append(Check("replicas-follow-master", ok, why))
    if master is None:
        checks.append(Check("no-errant-gtids", False, "no single master to compare with"))
    else:
        m = last.servers[master]
        errant = {
            s.server: ",".join(str(g) for g in raw_mariadb_errant(s.gtid_pos, m.gtid_pos))
            for s in last.servers.values()
            if s.reachable and s.server != master and s.gtid_pos
        }
        errant = {k: v for k, v in errant.items() if v}
        checks.append(Check("no-errant-gtids", not errant, str(errant) if errant else ""))
        following = [s.server for s in last.servers.values() if s.server in lost and s.master == master]
        if any(last.servers[s].io_running for s in following):
            checks.append(Check("lost-means-lost", False, f"reported lost but replicating: {following}"))

    if obs.final_master_ids is not None:
        missing = obs.acked_ids - obs.final_master_ids
        detail = f"{len(missing)} acknowledged ids missing, e.g. {sorted(missing)[:5]}" if missing else ""
        checks.append(Check("acked-writes-kept", not missing, detail))
    masters_closed = [r for r in closed if r.of_master]
    if masters_closed and masters_closed[-1].successor is not None:
        agrees = masters_closed[-1].successor == master
        detail = "" if agrees else f"audit: {masters_closed[-1].successor}, MySQL: {master}"
        checks.append(Check("audit-agrees", agrees, detail))
    if obs.recoveries and not obs.recoveries[-1].closed:
        checks.append(Check("recovery-closed", False, "the newest recovery record is still open"))
    consul_wrong = _consul_wrong(last, master)
    checks.append(Check("consul-names-master", not consul_wrong, str(consul_wrong) if consul_wrong else ""))

    converged_at = None
    for r in obs.rounds:
        if r.at < obs.fault_ended_at:
            continue
        if _converged(r, excused):  # a later flap shows in the final-state checks above
            converged_at = r.at
            break
    converge_s = None if converged_at is None else max(0.0, converged_at - obs.fault_ended_at)
    checks.append(
        Check(
            "converged",
            converge_s is not None and converge_s <= converge_within_s,
            "never" if converge_s is None else f"{converge_s:.2f}s (limit {converge_within_s:g}s)",
        )
    )
    return Verdict(tuple(checks), converge_s)
