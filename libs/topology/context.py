"""The per-instance aggregates the problem registry matches on, computed like orchestrator's inputs.

For each instance M of a `ClusterView` that could have a problem, `AnalysisContext` counts M's
replicas the way orchestrator's analysis query does (R, V, VR, F, L, D, downtimed), plus one count
orchestrator lacks: C, the valid replicas whose IO thread is connected to M. C is the replicas' vote on
whether M is alive: an IO thread that is running is receiving from M, so M is not dead whatever Baton's
own probe says (see `problems.py`). Unless it hears nothing: an IO thread stays "Yes" for up to
`slave_net_timeout` (60 s by default) in front of a hung master, so while M does not answer Baton, a
replica whose received mark (heartbeat count, received position; `AnalysisHistory.received_since`) has
not moved for more than `heartbeat_periods_silent` heartbeat periods is counted silent (S), not
connected. Replicas with heartbeats off keep the IO-thread rule.

Pure: `now` and the thresholds come in through the arguments. Built with plain loops over tuples of
(host, port): this runs for every instance of the fleet on every analysis tick.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from libs.models import InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology.errant import may_have_errant
from libs.topology.index import ViewIndex
from libs.topology.view import ClusterView, InstanceState

# orchestrator: last_io_error LIKE '%error %connecting to master%'; MySQL 8.4 says "source".
_CONNECT_ERROR = re.compile(r"error .*connecting to (master|source)", re.IGNORECASE)
# CR_CONN_HOST_ERROR (refused), CR_UNKNOWN_HOST, CR_SERVER_LOST (e.g. right after the master is killed).
CONNECT_ERRNOS = frozenset({2003, 2005, 2013})
# Using_Gtid (MariaDB) / Auto_Position (MySQL) values that mean "not replicating by GTID".
_NO_GTID = frozenset({"", "No", "no", "NO", "0", "OFF", "Off", "off"})


class AnalysisParams(BaseModel):
    """Thresholds of the analysis (orchestrator's config names in comments)."""

    model_config = ConfigDict(frozen=True)

    # A latest probe older than this counts as unreachable (a few poll intervals; orchestrator's
    # InstancePollSeconds + ReasonableInstanceCheckSeconds = 6 s by default).
    stale_after: timedelta = timedelta(seconds=6)
    reasonable_replication_lag_seconds: float = 10.0  # ReasonableReplicationLagSeconds
    # ReasonableLockedSemiSyncMasterSeconds; None = reasonable_replication_lag_seconds.
    reasonable_locked_semi_sync_master_seconds: float | None = None
    recover_non_writeable_master: bool = False  # RecoverNonWriteableMaster
    enforce_exact_semi_sync_replicas: bool = False  # EnforceExactSemiSyncReplicas
    include_no_problem: bool = False  # keep NoProblem findings without warnings (hint IncludeNoProblem)
    # BatonHeartbeatPeriodsSilent: a replica that has received nothing (no event, no heartbeat) for more
    # than this many heartbeat periods no longer hears from its master, whatever its IO thread says.
    # 0 turns the rule off (the IO-thread rule alone).
    heartbeat_periods_silent: float = 2.0

    @property
    def locked_semi_sync_seconds(self) -> float:
        if self.reasonable_locked_semi_sync_master_seconds is not None:
            return self.reasonable_locked_semi_sync_master_seconds
        return self.reasonable_replication_lag_seconds


@dataclass(frozen=True, slots=True)
class CoordinatesSeen:
    """A master's binlog coordinates and when Baton first saw them (unchanged since)."""

    file: str
    pos: int
    since: datetime


@dataclass(frozen=True, slots=True)
class ReceivedSeen:
    """A replica's `ReplicationStatus.received_mark` and when Baton first saw it (unchanged since)."""

    mark: tuple[object, ...]
    since: datetime


def _next_coordinates(seen: CoordinatesSeen | None, snapshot: InstanceSnapshot) -> CoordinatesSeen | None:
    """The new binlog entry for `snapshot`, or None to keep `seen` (unreachable, unchanged, or older)."""
    if not snapshot.reachable or not snapshot.binlog_file:
        return None
    if seen is not None and (seen.file, seen.pos) == (snapshot.binlog_file, snapshot.binlog_pos):
        return None
    if seen is not None and seen.since > snapshot.probed_at:
        return None
    return CoordinatesSeen(snapshot.binlog_file, snapshot.binlog_pos, snapshot.probed_at)


def _next_received(seen: ReceivedSeen | None, snapshot: InstanceSnapshot) -> ReceivedSeen | None:
    """The new received-mark entry for `snapshot`, or None to keep `seen` (no mark, unchanged, older).

    The mark changed somewhere between the previous snapshot and this one: `since` is when this probe
    got its answer (its start plus its latency), the later bound, so a silence is never measured longer
    than it was (the prober places its polls just after the heartbeats arrive, `heartbeat_phase.py`, so
    an arrival during the probe's own round trip is not rare)."""
    replication = snapshot.replication if snapshot.reachable else None
    mark = replication.received_mark if replication is not None else None
    if mark is None:
        return None
    answered = snapshot.probed_at + timedelta(milliseconds=snapshot.latency_ms)
    if seen is not None and (seen.mark == mark or seen.since > answered):
        return None
    return ReceivedSeen(mark, answered)


@dataclass(frozen=True, slots=True)
class AnalysisHistory:
    """What the analysis needs from the past, folded from snapshots by the caller (kept pure).

    - `binlog_since`: since when each instance's binlog coordinates have been unchanged, which tells a
      semi-sync master that is locked (no commit completes) from one that merely lacks semi-sync
      replicas right now;
    - `received_since`: since when each replica's received mark (events and heartbeats from its
      master) has been unchanged: a snapshot is a point in time, and "has received nothing for 3.4 s"
      takes two.
    """

    binlog_since: Mapping[InstanceKey, CoordinatesSeen] = field(default_factory=dict)
    received_since: Mapping[InstanceKey, ReceivedSeen] = field(default_factory=dict)

    def observe(self, snapshot: InstanceSnapshot) -> AnalysisHistory:
        """Fold one snapshot in. Unreachable snapshots and unchanged values keep the history."""
        key = snapshot.key
        coordinates = _next_coordinates(self.binlog_since.get(key), snapshot)
        received = _next_received(self.received_since.get(key), snapshot)
        if coordinates is None and received is None:
            return self
        binlog_since, received_since = self.binlog_since, self.received_since
        if coordinates is not None:
            binlog_since = {**binlog_since, key: coordinates}
        if received is not None:
            received_since = {**received_since, key: received}
        return AnalysisHistory(binlog_since=binlog_since, received_since=received_since)

    def received_nothing_for(self, snapshot: InstanceSnapshot) -> float | None:
        """Seconds, up to `snapshot`, during which the replica received nothing from its master (its
        received mark unchanged since Baton first saw it). None when unknown: heartbeats off or not
        counted, or the mark in `snapshot` is not the one on record."""
        replication = snapshot.replication
        mark = replication.received_mark if replication is not None else None
        if mark is None:
            return None
        seen = self.received_since.get(snapshot.key)
        if seen is None or seen.mark != mark:
            return None
        return (snapshot.probed_at - seen.since).total_seconds()

    def unchanged_for(self, info: InstanceSnapshot, now: datetime) -> float | None:
        """Seconds the instance's current coordinates have been seen unchanged, if known."""
        seen = self.binlog_since.get(info.key)
        if seen is None or (seen.file, seen.pos) != (info.binlog_file, info.binlog_pos):
            return None
        return (now - seen.since).total_seconds()


class HistoryRecorder:
    """An `AnalysisHistory` kept up to date in O(1) per snapshot, for long-lived services that follow
    the snapshot stream (`AnalysisHistory.observe` copies its maps). `history` is a live view of the
    recorder's maps: do not `observe` while an analysis reads it."""

    def __init__(self) -> None:
        self._binlog: dict[InstanceKey, CoordinatesSeen] = {}
        self._received: dict[InstanceKey, ReceivedSeen] = {}
        self.history = AnalysisHistory(binlog_since=self._binlog, received_since=self._received)

    def observe(self, snapshot: InstanceSnapshot) -> None:
        key = snapshot.key
        coordinates = _next_coordinates(self._binlog.get(key), snapshot)
        if coordinates is not None:
            self._binlog[key] = coordinates
        received = _next_received(self._received.get(key), snapshot)
        if received is not None:
            self._received[key] = received


def is_connect_error(replication: ReplicationStatus) -> bool:
    """The IO thread's last error is a failure to connect to (or the loss of) its master."""
    return replication.last_io_errno in CONNECT_ERRNOS or bool(
        _CONNECT_ERROR.search(replication.last_io_error)
    )


def is_failing_to_connect(replication: ReplicationStatus | None) -> bool:
    """The IO thread is down because it cannot connect to the master, while the SQL thread is fine."""
    if replication is None or replication.io_state is IOThreadState.YES or not replication.sql_running:
        return False
    return is_connect_error(replication)


@dataclass(slots=True)
class AnalysisContext:
    """Everything one instance's problem predicates look at. Count names follow orchestrator."""

    view: ClusterView
    index: ViewIndex
    state: InstanceState
    now: datetime
    params: AnalysisParams
    valid: bool  # LastCheckValid: latest probe reachable and fresh
    is_master: bool
    is_co_master: bool
    replicas: Sequence[InstanceState]
    replica_count: int = 0  # R
    valid_replicas: int = 0  # V
    replicating_replicas: int = 0  # VR: valid, IO and SQL running
    connected_replicas: int = 0  # C: valid, IO running and not silent (the replicas still hear from M)
    # S: valid, IO running, but nothing received for over heartbeat_periods_silent heartbeat periods.
    # Counted only while M itself is not valid (the question is then "do its replicas hear from it?").
    silent_replicas: int = 0
    silent_for: float = 0.0  # the shortest silence among them (seconds)
    silent_periods: tuple[float, ...] = ()  # their heartbeat periods, sorted, distinct
    failing_to_connect_replicas: int = 0  # F
    lagging_replicas: int = 0  # L
    delayed_replicas: int = 0  # D
    downtimed_replicas: int = 0
    binlog_unchanged_seconds: float | None = None
    # Replica facts for the structure warnings, gathered in the same pass (over last known settings).
    known_replicas: int = 0  # replicas seen at least once
    gtid_replicas: int = 0  # ... of which replicate with GTID
    logging_formats: set[str] = field(default_factory=set)  # binlog_format of log_slave_updates replicas
    logging_versions: set[str] = field(default_factory=set)
    replica_gtid_modes: set[str] = field(default_factory=set)
    errant_suspects: list[InstanceState] = field(default_factory=list)  # differ from M without the chain

    @property
    def key(self) -> InstanceKey:
        return self.state.key

    @property
    def info(self) -> InstanceSnapshot:
        return self.state.info

    @property
    def partial(self) -> bool:
        """LastCheckPartialSuccess: the failed probe still got its first answer."""
        return self.state.last_probe.partial

    @property
    def downtimed(self) -> bool:
        return self.state.downtimed

    @property
    def failing_to_connect(self) -> bool:
        """M itself is a reachable replica that cannot connect to its own master."""
        return self.valid and is_failing_to_connect(self.state.last_probe.replication)

    @property
    def master_valid(self) -> bool:
        """M's own master is in the view and its latest probe is reachable and fresh."""
        master = self.index.get(self.info.master_key)
        if master is None:
            return False
        probe = master.last_probe
        return probe.reachable and self.now - probe.probed_at <= self.params.stale_after

    @property
    def depth(self) -> int:
        return self.index.depth(self.state.key)

    @property
    def binlog_stale(self) -> bool:
        seconds = self.binlog_unchanged_seconds
        return seconds is not None and seconds >= self.params.locked_semi_sync_seconds


def build_context(
    view: ClusterView,
    index: ViewIndex,
    state: InstanceState,
    replicas: Sequence[InstanceState],
    *,
    now: datetime,
    params: AnalysisParams,
    valid_since: datetime,
    is_co_master: bool,
    history: AnalysisHistory | None = None,
) -> AnalysisContext:
    """Count one instance's replicas. `valid_since` is `now - params.stale_after`, computed once.

    Counts accumulate in locals and the context is built once: this runs for every master of the fleet.
    """
    probe = state.last_probe
    info = state.last_seen or probe
    lag_limit = params.reasonable_replication_lag_seconds
    check_errant = state.last_seen is not None
    m_valid = probe.reachable and probe.probed_at >= valid_since
    # Silence is asked only of an M Baton cannot get an answer from: do its replicas still hear from it?
    periods_silent = params.heartbeat_periods_silent if history is not None and not m_valid else 0.0
    valid = connected = replicating = failing = lagging = delayed = downtimed = known = gtid = 0
    silent = 0
    silent_for: float | None = None
    silent_periods: set[float] = set()
    formats: set[str] = set()
    versions: set[str] = set()
    modes: set[str] = set()
    suspects: list[InstanceState] = []
    for replica in replicas:
        if replica.downtimed:
            downtimed += 1
        seen = replica.last_seen
        if seen is not None:
            known += 1
            lag = seen.replication_lag_seconds
            if lag is not None and lag > lag_limit:
                lagging += 1
            replication = seen.replication
            if replication is not None:
                if replication.sql_delay > 0:
                    delayed += 1
                if replication.using_gtid not in _NO_GTID:
                    gtid += 1
            if seen.log_bin and seen.log_slave_updates:
                formats.add(seen.binlog_format)
                versions.add(seen.version)
            if seen.gtid_mode:
                modes.add(seen.gtid_mode)
            if check_errant and not replica.downtimed and may_have_errant(seen, info):
                suspects.append(replica)
        latest = replica.last_probe
        if not latest.reachable or latest.probed_at < valid_since:
            continue
        valid += 1
        replication = latest.replication
        if replication is None:
            continue
        if replication.io_state is IOThreadState.YES:
            if periods_silent > 0 and history is not None and replication.heartbeat_period > 0:
                quiet = history.received_nothing_for(latest)
                if quiet is not None and quiet > periods_silent * replication.heartbeat_period:
                    silent += 1
                    silent_for = quiet if silent_for is None else min(silent_for, quiet)
                    silent_periods.add(replication.heartbeat_period)
                    continue
            connected += 1
            if replication.sql_running:
                replicating += 1
        elif is_failing_to_connect(replication):
            failing += 1
    ctx = AnalysisContext(
        view=view,
        index=index,
        state=state,
        now=now,
        params=params,
        valid=m_valid,
        is_master=info.replication is None or info.replication.master is None,
        is_co_master=is_co_master,
        replicas=replicas,
        replica_count=len(replicas),
        valid_replicas=valid,
        replicating_replicas=replicating,
        connected_replicas=connected,
        silent_replicas=silent,
        silent_for=silent_for or 0.0,
        silent_periods=tuple(sorted(silent_periods)),
        failing_to_connect_replicas=failing,
        lagging_replicas=lagging,
        delayed_replicas=delayed,
        downtimed_replicas=downtimed,
        known_replicas=known,
        gtid_replicas=gtid,
        logging_formats=formats,
        logging_versions=versions,
        replica_gtid_modes=modes,
        errant_suspects=suspects,
    )
    if history is not None and info.binlog_file:
        ctx.binlog_unchanged_seconds = history.unchanged_for(info, now)
    return ctx
