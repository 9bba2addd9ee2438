"""Topology refactoring decisions: is a move safe, and which replica goes under which source.

Pure (no I/O, no clock): every function takes the instances' latest snapshots (`Known`) and returns a
`MovePlan` — the moves in the order they must run, or the reason it is refused — so the recovery
leader (`libs/recovery/refactoring.py`) only carries plans out. Refusals use orchestrator's words where
orchestrator has them (go/inst/instance.go `CanReplicateFrom`, `CanMove`; go/inst/instance_topology.go
`MoveUp`, `MoveBelow`, `TakeMaster`, `MakeCoMaster`, `moveInstanceBelowViaGTID`), because DBAs script
against them; Baton's own checks (loops, errant transactions) say what they found.

Every move is a GTID move (MariaDB `MASTER_USE_GTID=slave_pos`, MySQL auto-position): Baton has no
Pseudo-GTID and no binlog-coordinate equivalence records, so `match*` are GTID moves too and
`move-equivalent` is refused with orchestrator's "No equivalent coordinates found" words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from libs.models import Flavor, InstanceKey, InstanceSnapshot
from libs.topology.candidate import progress_rank
from libs.topology.errant_inject import mariadb_injections
from libs.topology.holdings import judged_errant

Known = Mapping[InstanceKey, InstanceSnapshot]

_FORMATS = {"STATEMENT": 0, "MIXED": 1, "ROW": 2}


@dataclass(frozen=True)
class Move:
    """`replica` is to replicate from `source` (by GTID). `demoted_master`: the replica is a master
    that never replicated (make-co-master): its applied position is set to what it wrote first."""

    replica: InstanceKey
    source: InstanceKey
    demoted_master: bool = False


@dataclass(frozen=True)
class MovePlan:
    """The moves of one refactoring (run in order), or why it is refused (`refused`). `skipped`: replicas
    of a bulk move left where they are, with the reason (orchestrator reports them as errors)."""

    moves: tuple[Move, ...] = ()
    refused: str | None = None
    skipped: tuple[tuple[InstanceKey, str], ...] = ()
    message: str = ""  # orchestrator's success message
    subject: InstanceKey | None = None  # whose instance JSON the API answers with
    touched: tuple[InstanceKey, ...] = field(default=())
    chain: bool = False  # each move needs the previous one: stop at the first failure

    @property
    def ok(self) -> bool:
        return self.refused is None


def refuse(reason: str) -> MovePlan:
    return MovePlan(refused=reason)


# -- single-instance checks (orchestrator's words) -------------------------------------------------------


def _major(info: InstanceSnapshot) -> tuple[int, int] | None:
    match = re.match(r"(?:5\.5\.5-)?(\d+)\.(\d+)", info.version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def can_replicate_from(replica: InstanceSnapshot, source: InstanceSnapshot) -> str | None:
    """Why `replica` cannot replicate from `source` (orchestrator's `CanReplicateFrom` rules and
    words), or None: binary logs on the source (and log_slave_updates when the source is itself a
    replica: it must relay), a replica not older than its source, no binlog format downgrade for a
    replica that re-logs, distinct server ids."""
    r, s = replica.key, source.key
    if r == s:
        return f"instance cannot replicate from itself: {r}"
    if not source.log_bin:
        return f"instance does not have binary logs enabled: {s}"
    if source.is_replica and not source.log_slave_updates:
        return f"instance does not have log_slave_updates enabled: {s}"
    rv, sv = _major(replica), _major(source)
    if rv is not None and sv is not None and rv < sv:
        return f"instance {r} has version {replica.version}, which is lower than {source.version} on {s} "
    if replica.log_bin and replica.log_slave_updates:
        rf = _FORMATS.get(replica.binlog_format.upper())
        sf = _FORMATS.get(source.binlog_format.upper())
        if rf is not None and sf is not None and rf < sf:
            return (
                f"Cannot replicate from {source.binlog_format} binlog format on {s} "
                f"to {replica.binlog_format} on {r}"
            )
    if replica.server_id is not None and replica.server_id == source.server_id:
        return f"Identical server id: {s}, {r} both have {replica.server_id}"
    return None


def uses_gtid(info: InstanceSnapshot) -> bool:
    """Does the instance replicate by GTID (MariaDB Using_Gtid ≠ No; MySQL Auto_Position)?"""
    replication = info.replication
    return replication is not None and replication.using_gtid.lower() not in ("", "no")


def supports_gtid(info: InstanceSnapshot) -> bool:
    """Can the instance serve GTID replicas (MariaDB always; MySQL with gtid_mode ON)?"""
    if info.flavor is Flavor.MARIADB:
        return True
    return info.gtid_mode.upper() == "ON"


def gtid_compatible(replica: InstanceSnapshot, source: InstanceSnapshot) -> str | None:
    """orchestrator's `CheckMoveViaGTID`: both GTID, of one flavor."""
    ok = (
        uses_gtid(replica)
        and supports_gtid(source)
        and replica.flavor is not None
        and replica.flavor is source.flavor
    )
    if not ok:
        return f"Instances {replica.key}, {source.key} not GTID compatible or not using GTID"
    return None


def can_move(info: InstanceSnapshot, *, max_lag_s: float) -> str | None:
    """orchestrator's `CanMove`: reachable, both threads running, lag known and reasonable."""
    k = info.key
    if not info.reachable:
        return f"{k}: last check invalid"
    replication = info.replication
    if replication is None or not replication.sql_running or not replication.io_running:
        return f"{k}: instance is not replicating"
    lag = replication.seconds_behind_master
    if lag is None:
        return f"{k}: cannot determine replication lag"
    if replication.sql_delay > 0:
        lag = abs(lag - replication.sql_delay)
    if lag > max_lag_s:
        return f"{k}: lags too much"
    return None


def ancestors(key: InstanceKey, known: Known) -> list[InstanceKey]:
    """`key`'s master, its master's master, ... (stops at a loop or an unknown instance)."""
    chain: list[InstanceKey] = []
    info = known.get(key)
    while info is not None and info.master_key is not None and info.master_key not in chain:
        if info.master_key == key:
            break
        chain.append(info.master_key)
        info = known.get(info.master_key)
    return chain


def replicas_of(key: InstanceKey, known: Known) -> list[InstanceSnapshot]:
    return sorted((i for i in known.values() if i.master_key == key), key=lambda i: i.key)


def errant_of(replica: InstanceSnapshot, known: Known) -> str:
    """The replica's errant transactions against its master and that master's chain ("" if none, or
    when they cannot be judged: no reachable master)."""
    master = known.get(replica.master_key) if replica.master_key else None
    if master is None or not master.reachable:
        return ""
    chain = [master, *(known[k] for k in ancestors(master.key, known) if k in known)]
    return judged_errant(replica, master, chain)


def errant_refusal(replica: InstanceSnapshot, known: Known) -> str | None:
    """Transactions the replica executed that its master never had would travel with it: refused
    (fix them first with gtid-errant-reset-master or gtid-errant-inject-empty)."""
    errant = errant_of(replica, known)
    master = replica.master_key
    if errant:
        return (
            f"{replica.key} has errant GTIDs {errant} (executed there, never on {master}); "
            "not moved: resolve them first (gtid-errant-reset-master or gtid-errant-inject-empty)"
        )
    return None


def move_refusal(replica: InstanceSnapshot, source: InstanceSnapshot, known: Known) -> str | None:
    """Everything that refuses `replica` replicating from `source` by GTID: a loop (source below the
    replica), orchestrator's CanReplicateFrom, GTID compatibility, errant transactions."""
    if replica.key in ancestors(source.key, known):
        return (
            f"{source.key} replicates (directly or not) from {replica.key}: relocating {replica.key} "
            "below it would make a replication loop"
        )
    reason = can_replicate_from(replica, source)
    if reason:
        return f"{replica.key} cannot replicate from {source.key}. Reason: {reason}"
    return gtid_compatible(replica, source) or errant_refusal(replica, known)


# -- plans per verb ---------------------------------------------------------------------------------------


def _get(known: Known, key: InstanceKey) -> InstanceSnapshot | str:
    info = known.get(key)
    if info is None or not info.reachable:
        return f"{key}: last check invalid" if info is not None else f"instance {key} not found"
    return info


def relocate(known: Known, key: InstanceKey, target: InstanceKey, verb: str = "relocate") -> MovePlan:
    """`relocate`, `move-gtid`, `match`, `repoint <target>`: the instance replicates from `target`."""
    info, other = _get(known, key), _get(known, target)
    if isinstance(info, str):
        return refuse(info)
    if isinstance(other, str):
        return refuse(other)
    if not info.is_replica:
        return refuse(f"instance is not a replica: {key}")
    # already below the target (by GTID): a repoint in place, nothing to check
    if not (info.master_key == target and uses_gtid(info)) and (reason := move_refusal(info, other, known)):
        return refuse(reason)
    messages = {
        "relocate": f"Instance {key} relocated below {target}",
        "move-gtid": f"Instance {key} moved below {target} via GTID",
        "match": f"Instance {key} matched below {target}",
        "repoint": f"Instance {key} repointed below {target}",
    }
    return MovePlan(
        moves=(Move(key, target),),
        message=messages.get(verb, f"{key} below {target}"),
        subject=key,
        touched=(key, target),
    )


def move_up(known: Known, key: InstanceKey, *, max_lag_s: float, verb: str = "move-up") -> MovePlan:
    """`move-up` / `match-up`: the instance replicates from its master's master."""
    info = _get(known, key)
    if isinstance(info, str):
        return refuse(info)
    if not info.is_replica or info.master_key is None:
        return refuse(f"instance is not a replica: {key}")
    if verb == "move-up" and (why := can_move(info, max_lag_s=max_lag_s)):
        return refuse(why)
    master = _get(known, info.master_key)
    if isinstance(master, str):
        return refuse(master)
    if not master.is_replica or master.master_key is None:
        return refuse(f"master is not a replica itself: {master.key}")
    grand = _get(known, master.master_key)
    if isinstance(grand, str):
        return refuse(grand)
    reason = move_refusal(info, grand, known)
    if reason:
        return refuse(reason)
    text = f"Instance {key} moved up" if verb == "move-up" else f"Instance {key} matched up at {grand.key}"
    return MovePlan(
        moves=(Move(key, grand.key),), message=text, subject=key, touched=(key, master.key, grand.key)
    )


def move_below(known: Known, key: InstanceKey, sibling: InstanceKey, *, max_lag_s: float) -> MovePlan:
    """`move-below`: the instance replicates from its sibling."""
    info, other = _get(known, key), _get(known, sibling)
    if isinstance(info, str):
        return refuse(info)
    if isinstance(other, str):
        return refuse(other)
    for each in (info, other):
        if why := can_move(each, max_lag_s=max_lag_s):
            return refuse(why)
    if not (info.is_replica and other.is_replica and key != sibling and info.master_key == other.master_key):
        return refuse(f"instances are not siblings: {key}, {sibling}")
    reason = move_refusal(info, other, known)
    if reason:
        return refuse(reason)
    return MovePlan(
        moves=(Move(key, sibling),), message=f"Instance {key} moved below {sibling}", subject=key,
        touched=(key, sibling),
    )  # fmt: skip


def bulk(
    known: Known,
    key: InstanceKey,
    target: InstanceKey | None,
    *,
    verb: str,
    pattern: str = "",
) -> MovePlan:
    """The replicas of `key` (matching `pattern`, a regular expression, when given) to `target`:
    `relocate-replicas`, `move-replicas-gtid`, `repoint-replicas` (target: their master by default),
    `move-up-replicas`/`match-up-replicas` (target: `key`'s master), `take-siblings` (the siblings
    of `key` below `key`). A replica that may not move is skipped with its reason; refused when
    none may."""
    info = _get(known, key)
    if isinstance(info, str):
        return refuse(info)
    if verb == "take-siblings":
        if info.master_key is None:
            return refuse(f"instance is not a replica: {key}")
        group = [r for r in replicas_of(info.master_key, known) if r.key != key]
        target = key
    else:
        group = replicas_of(key, known)
        if verb in ("move-up-replicas", "match-up-replicas"):
            if info.master_key is None:
                return refuse(f"instance is not a replica: {key}")
            target = info.master_key
        elif target is None:
            target = key  # repoint-replicas: in place
    if pattern:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            return refuse(f"bad pattern {pattern!r}: {exc}")
        group = [r for r in group if rx.search(str(r.key))]
    group = [r for r in group if r.key != target]
    source = _get(known, target)
    if isinstance(source, str):
        return refuse(source)
    moves: list[Move] = []
    skipped: list[tuple[InstanceKey, str]] = []
    for replica in group:
        if not replica.reachable:
            skipped.append((replica.key, f"{replica.key}: last check invalid"))
            continue
        if replica.master_key == target and uses_gtid(replica):
            moves.append(Move(replica.key, target))
            continue
        reason = move_refusal(replica, source, known)
        if reason:
            skipped.append((replica.key, reason))
        else:
            moves.append(Move(replica.key, target))
    if group and not moves:
        return MovePlan(
            refused="Error on all operations: " + "; ".join(r for _, r in skipped), skipped=tuple(skipped)
        )
    count = len(moves)
    messages = {
        "relocate-replicas": f"Relocated {count} replicas of {key} below {target}",
        "move-replicas-gtid": f"Moved {count} replicas of {key} below {target} via GTID",
        "repoint-replicas": f"Repointed {count} replicas of {key}",
        "move-up-replicas": f"Moved up {count} replicas of {key}. New master: {target}",
        "match-up-replicas": f"Matched up {count} replicas of {key} below {target}",
        "take-siblings": f"Took {count} siblings of {key}",
    }
    touched = (key, target, *(m.replica for m in moves))
    return MovePlan(
        moves=tuple(moves),
        skipped=tuple(skipped),
        message=messages.get(verb, f"{verb}: {count} moved"),
        subject=key,
        touched=tuple(dict.fromkeys(touched)),
    )


def take_master(known: Known, key: InstanceKey) -> MovePlan:
    """`take-master`: the instance takes its master's place (under its grandparent, if any) and the
    master replicates from it; the other replicas of both stay where they are."""
    info = _get(known, key)
    if isinstance(info, str):
        return refuse(info)
    if info.master_key is None:
        return refuse(f"instance is not a replica: {key}")
    master = _get(known, info.master_key)
    if isinstance(master, str):
        return refuse(master)
    if master.master_key is not None and master.master_key == key:
        return refuse(f"{master.key} is co-master. Cannot take it.")
    if not master.is_replica or master.master_key is None:
        return refuse(f"master is not a replica itself: {master.key}")
    grand = _get(known, master.master_key)
    if isinstance(grand, str):
        return refuse(grand)
    reason = can_replicate_from(master, info)
    if reason:
        return refuse(reason)
    reason = move_refusal(info, grand, known) or gtid_compatible(master, info)
    if reason:
        return refuse(reason)
    return MovePlan(
        moves=(Move(key, grand.key), Move(master.key, key)),
        message=f"{key} took its master",
        subject=key,
        touched=(key, master.key, grand.key),
        chain=True,
    )


def make_co_master(known: Known, key: InstanceKey, *, max_lag_s: float) -> MovePlan:
    """`make-co-master`: the instance's master (a top master: it replicates from nothing Baton knows)
    replicates from the instance. The instance must be read-only (orchestrator's rule). Undo:
    `reset-replica` (or `stop-replica` + `reset-replica`) on the master."""
    info = _get(known, key)
    if isinstance(info, str):
        return refuse(info)
    if why := can_move(info, max_lag_s=max_lag_s):
        return refuse(why)
    assert info.master_key is not None  # can_move: replicating
    master = _get(known, info.master_key)
    if isinstance(master, str):
        return refuse(master)
    if master.master_key == key:
        return refuse(f"instance {key} is already co master of {master.key}")
    if not info.read_only:
        return refuse(f"instance {key} is not read-only; first make it read-only before making it co-master")
    if master.master_key is not None and master.master_key in known:
        return refuse(f"master {master.key} already has known master: {master.master_key}")
    reason = can_replicate_from(master, info)
    if reason:
        return refuse(reason)
    if master.flavor is not info.flavor or not supports_gtid(info):
        return refuse(f"Instances {master.key}, {key} not GTID compatible or not using GTID")
    return MovePlan(
        moves=(Move(master.key, key, demoted_master=True),),
        message=f"{key} made co-master of {master.key}",
        subject=key,
        touched=(key, master.key),
    )


def regroup_replicas(known: Known, key: InstanceKey) -> MovePlan:
    """`regroup-replicas`: the most advanced replica of `key` (GTID) becomes the master of its
    siblings; those that cannot replicate from it stay, with the reason."""
    info = _get(known, key)
    if isinstance(info, str):
        return refuse(info)
    group = [r for r in replicas_of(key, known) if r.reachable]
    if not group:
        return refuse(f"No replicas found for {key}")
    ranks = progress_rank(group)
    usable = [r for r in group if r.log_bin and r.log_slave_updates]
    if not usable:
        return refuse(
            f"RegroupReplicas: no candidate among the replicas of {key} has log_bin and log_slave_updates"
        )
    candidate = min(usable, key=lambda r: (ranks.get(r.key, 1 << 30), r.key))
    moves, skipped = [], []
    for replica in group:
        if replica.key == candidate.key:
            continue
        reason = move_refusal(replica, candidate, known)
        if reason:
            skipped.append((replica.key, reason))
        else:
            moves.append(Move(replica.key, candidate.key))
    return MovePlan(
        moves=tuple(moves),
        skipped=tuple(skipped),
        message=f"Regrouped {len(moves)} replicas of {key}; candidate: {candidate.key}",
        subject=candidate.key,
        touched=(key, candidate.key, *(m.replica for m in moves)),
    )


def move_equivalent(known: Known, key: InstanceKey, target: InstanceKey) -> MovePlan:
    """Baton keeps no binlog-coordinate equivalence records: always refused in orchestrator's words
    (use relocate or move-gtid)."""
    info = _get(known, key)
    if isinstance(info, str):
        return refuse(info)
    if key == target:
        return refuse(f"MoveEquivalent: attempt to move an instance below itself {key}")
    r = info.replication
    at = f"{r.relay_master_log_file}:{r.exec_master_log_pos}" if r else ":0"
    return refuse(
        f"No equivalent coordinates found for {key} replicating from {info.master_key} at {at} "
        "(Baton keeps no equivalence records: use relocate or move-gtid)"
    )


# -- replication control ---------------------------------------------------------------------------------


def restart_statements(info: InstanceSnapshot, injected: str, *, replica_terms: bool = False) -> list[str]:
    """orchestrator's `restart-replica-statements`: the statements that stop replication, run
    `injected`, and start the threads that were running (nothing is executed)."""
    word = "replica" if replica_terms else "slave"
    r = info.replication
    out = [f"stop {word} io_thread;", f"stop {word} sql_thread;"]
    if injected.strip():
        out.append(injected.strip().rstrip(";") + ";")
    if r is not None and r.io_state.value != "No":
        out.append(f"start {word} io_thread;")
    if r is not None and r.sql_running:
        out.append(f"start {word} sql_thread;")
    return out


def purge_refusal(known: Known, key: InstanceKey, binlog: str) -> str | None:
    """`purge-binary-logs`: refused while a replica of `key` still reads a binary log before `binlog`
    (orchestrator: unsafe to purge), or for a name that is no binary log of the instance's series."""
    info = known.get(key)
    if info is None:
        return f"instance {key} not found"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+\.[0-9]+", binlog):
        return f"purge-binary-logs: {binlog!r} is not a binary log name"
    for replica in replicas_of(key, known):
        r = replica.replication
        if r is None or not r.read_master_log_file:
            continue
        if _binlog_index(r.read_master_log_file) < _binlog_index(binlog):
            return (
                f"Unsafe to purge binary logs on {key} up to {binlog} because replica {replica.key} "
                f"has only applied up to {r.read_master_log_file}:{r.read_master_log_pos}"
            )
    return None


def _binlog_index(name: str) -> int:
    suffix = name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


# -- errant transactions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrantFix:
    """What gtid-errant-reset-master / gtid-errant-inject-empty act on: the server and the errant set."""

    target: InstanceKey  # reset-master: the replica itself; inject-empty: the cluster's master
    errant: str
    refused: str | None = None


def _errant_subject(known: Known, key: InstanceKey, verb: str) -> tuple[InstanceSnapshot, str] | ErrantFix:
    """The instance and its errant set, or the refusal when it is unknown, unreachable or has none."""
    info = known.get(key)
    if info is None or not info.reachable:
        why = f"instance {key} not found" if info is None else f"{key}: last check invalid"
        return ErrantFix(key, "", why)
    errant = errant_of(info, known)
    if not errant:
        return ErrantFix(key, "", f"{verb} will not operate on {key} because no errant GTID is found")
    return info, errant


def errant_reset(known: Known, key: InstanceKey) -> ErrantFix:
    """`gtid-errant-reset-master` (orchestrator's rules and words): the replica has errant
    transactions and no replicas of its own (after RESET MASTER its binary logs are gone)."""
    found = _errant_subject(known, key, "gtid-errant-reset-master")
    if isinstance(found, ErrantFix):
        return found
    errant = found[1]
    count = len(replicas_of(key, known))
    if count:
        return ErrantFix(
            key,
            errant,
            f"gtid-errant-reset-master will not operate on {key} because it has {count} replicas. "
            "Expecting no replicas",
        )
    return ErrantFix(key, errant)


def errant_inject(known: Known, key: InstanceKey) -> ErrantFix:
    """`gtid-errant-inject-empty`: the replica's errant GTIDs are committed as empty transactions on the
    top master of its cluster, so every server has them. MariaDB logs no empty transaction: a no-op
    statement carries each GTID instead, when that is sound (`errant_inject.mariadb_injections`: the
    fix's `errant` is then the GTIDs to log, the last of each domain)."""
    found = _errant_subject(known, key, "gtid-errant-inject-empty")
    if isinstance(found, ErrantFix):
        return found
    info, errant = found
    top = ancestors(key, known)
    master = known.get(top[-1]) if top else None
    if master is None or not master.reachable:
        return ErrantFix(key, errant, f"gtid-errant-inject-empty found no reachable master for {key}")
    if info.flavor is Flavor.MARIADB:
        gtids, refused = mariadb_injections(info, master, errant)
        if refused:
            return ErrantFix(key, errant, refused)
        return ErrantFix(master.key, ",".join(str(g) for g in gtids))
    return ErrantFix(master.key, errant)
