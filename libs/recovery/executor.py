"""Carry out one `StepSpec` on MySQL, fenced to the last statement: every statement goes through a
`FencedSession` (libs/mysql/fenced.py), which checks the fence immediately before sending it and bounds it
by `ExecutionOptions.statement_timeout_s` (below the lease TTL); long waits are sent as slices of at most
0.5 s. A leader that lost the lease stops at once: only a statement already sent may still complete on
the server, within its time limit. The SQL itself lives in `libs.mysql.replication`.

Per-target failures of a step over several instances are returned, not raised: a replica that cannot
be repointed is lost (and recorded), the recovery goes on. A failure on a `required` target (the
successor, the intermediate) fails the step and is named in `StepResult.failed`; the pipeline then falls
back to the next candidate before the point of no return (`steps.fallback_candidates`), else fails the
recovery.

Relay logs are never thrown away by accident: a stopped SQL thread is started with `apply_relay_log`
(MariaDB discards the relay log when the SQL thread starts with both threads stopped, and on CHANGE
MASTER), what a replica still has to apply is judged by GTID where it has one (`_left`: its coordinates
lie after a relay-log CHANGE MASTER), and a replica is not repointed while it has received transactions
its new source lacks. Every repoint is verified: the step waits until the replica streams from its new
source (IO thread connected and reading the source's binlog, SQL thread running, no error), else the
replica is lost with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from libs.errors import LeadershipLost, ReplicationCommandError
from libs.models import InstanceKey, IOThreadState, ReplicationStatus, utcnow
from libs.mysql.connection import ConnectionPool, Credentials, MySQLError
from libs.mysql.fenced import FencedSession
from libs.mysql.replication import (
    applied_gtid_position,
    apply_relay_log,
    binlog_gtid_position,
    change_master_gtid,
    prepare_demoted_master,
    read_only,
    received_position,
    replication_status,
    reset_replica_all,
    set_master_host,
    set_read_only,
    set_semi_sync,
    start_replication,
    stop_replication,
    wait_gtid,
)
from libs.recovery.audit import RecoveryRecord, StepOutcome
from libs.recovery.downtime import DowntimeWriter, lost_downtime
from libs.recovery.fence import Fence
from libs.recovery.steps import ExecutionOptions, StepKind, StepSpec
from libs.topology.context import is_connect_error
from libs.topology.gtid import GtidSet, mariadb_contains, mariadb_domain_seqs

_SLICE_S = 0.5  # longest blocking wait between two fence checks (and below half the statement timeout)


@dataclass
class StepResult:
    outcome: StepOutcome
    detail: str = ""
    error: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # non-fatal, per target
    lost: dict[InstanceKey, str] = field(default_factory=dict)  # targets that now count as lost
    outage_ms: float | None = None  # SWITCH: old master read_only -> new master writable
    failed: dict[InstanceKey, str] = field(default_factory=dict)  # required targets that failed, and why
    reversible: bool = True  # False: a failed target may have been made writable (or reset): no fallback


class Executor(Protocol):
    async def run(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult: ...


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MySQLError):
        code = f" [{exc.code}]" if exc.code is not None else ""
        return f"{exc.message}{code}"
    return str(exc) or type(exc).__name__


def _covers(have: str, wanted: str, *, mariadb: bool) -> bool | None:
    """Does GTID position `have` include everything in `wanted`? MariaDB: per domain of `wanted`, MySQL:
    set inclusion. None when a position does not parse."""
    try:
        if mariadb:
            return mariadb_contains(have, wanted, domains=mariadb_domain_seqs(wanted).keys())
        return GtidSet.parse(have) >= GtidSet.parse(wanted)
    except ValueError:
        return None


class MySQLExecutor:
    def __init__(
        self,
        pool: ConnectionPool,
        topology: Credentials,
        replication: Credentials,
        options: ExecutionOptions,
        *,
        downtime: DowntimeWriter | None = None,
        clock: Callable[[], datetime] = utcnow,
        failed_pool: ConnectionPool | None = None,
    ) -> None:
        """`failed_pool`: the failed master's connections (a forced failover's read-only step), with a
        short connect timeout so a hung server costs little; None: `pool`."""
        self.pool, self.creds, self.repl = pool, topology, replication
        self.failed_pool = failed_pool or pool
        self.options, self.downtime, self.clock = options, downtime, clock
        self.slice_s = min(_SLICE_S, options.statement_timeout_s / 2)

    async def run(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        handlers: dict[StepKind, Callable[[StepSpec, RecoveryRecord, Fence], Awaitable[StepResult]]] = {
            StepKind.STOP_IO: self._stop_io,
            StepKind.DRAIN: self._drain_all,
            StepKind.WAIT_APPLIED: self._wait_applied,
            StepKind.REPOINT: self._repoint,
            StepKind.WAIT_CAUGHT_UP: self._wait_caught_up,
            StepKind.STOP_REPLICATION: self._stop_replication,
            StepKind.PROMOTE: self._promote,
            StepKind.DOWNTIME_LOST: self._downtime_lost,
            StepKind.DETACH_LOST: self._detach_lost,
            StepKind.SET_READ_ONLY: self._set_read_only,
            StepKind.RELOCATE: self._relocate,
            StepKind.SWITCH: self._switch,
            StepKind.DEMOTE: self._demote,
        }
        fence.check()
        return await handlers[spec.kind](spec, record, fence)

    # -- helpers -------------------------------------------------------------------------------------
    def _session(self, key: InstanceKey, fence: Fence, pool: ConnectionPool | None = None) -> FencedSession:
        return FencedSession(pool or self.pool, key, self.creds, fence, self.options.statement_timeout_s)

    async def _each(
        self,
        targets: Iterable[InstanceKey],
        fence: Fence,
        action: Callable[[FencedSession], Awaitable[str | None]],
        *,
        bounded: bool = True,
        pool: ConnectionPool | None = None,
    ) -> tuple[dict[InstanceKey, str], dict[InstanceKey, str]]:
        """Run `action` on every target in parallel (at most MaxConcurrentReplicaOperations at a time
        when `bounded`; reads and waits are not). Returns ({target: note}, {target: error});
        LeadershipLost from any target cancels the others and propagates."""
        notes: dict[InstanceKey, str] = {}
        errors: dict[InstanceKey, str] = {}
        targets = list(targets)
        limit = asyncio.Semaphore(self.options.repoint_concurrency if bounded else max(1, len(targets)))

        async def one(key: InstanceKey) -> None:
            async with limit:
                try:
                    note = await action(self._session(key, fence, pool))
                except LeadershipLost:
                    raise
                except Exception as exc:  # noqa: BLE001 - recorded per target
                    errors[key] = _describe(exc)
                else:
                    if note:
                        notes[key] = note

        try:
            async with asyncio.TaskGroup() as group:
                for key in targets:
                    group.create_task(one(key))
        except* LeadershipLost as lost:
            raise lost.exceptions[0] from None
        return notes, errors

    @staticmethod
    def _result(spec: StepSpec, notes: dict[InstanceKey, str], errors: dict[InstanceKey, str]) -> StepResult:
        fatal = [k for k in spec.required if k in errors]
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(notes.items()))
        text = {str(k): v for k, v in errors.items()}
        if fatal and not spec.best_effort:
            return StepResult(
                StepOutcome.FAILED,
                detail=detail,
                error="; ".join(f"{k}: {errors[k]}" for k in fatal),
                errors={k: v for k, v in text.items() if InstanceKey.parse(k) not in fatal},
                failed={k: errors[k] for k in fatal},
            )
        return StepResult(StepOutcome.DONE, detail=detail, errors=text)

    # -- what a replica still has to apply -------------------------------------------------------------
    async def _left(self, s: FencedSession, status: ReplicationStatus) -> str:
        """What `s` received but has not applied yet, as a sentence; "" when nothing. By GTID when the
        replica has a received GTID position (its coordinates say "applied" right after a relay-log
        CHANGE MASTER), else by the master's coordinates (read vs executed)."""
        mariadb = (await s.dialect()).is_mariadb
        received = received_position(status, mariadb=mariadb)
        if received:
            applied = await applied_gtid_position(s)
            covered = _covers(applied, received, mariadb=mariadb)
            if covered is not None:
                return "" if covered else f"received {received}, applied {applied or 'nothing'}"
        if status.relay_log_applied:
            return ""
        return (
            f"read {status.read_master_log_file}:{status.read_master_log_pos}, "
            f"executed {status.relay_master_log_file}:{status.exec_master_log_pos}"
        )

    async def _wait_some(self, s: FencedSession, status: ReplicationStatus, remaining: float) -> None:
        """Wait a little for `s` to apply more: one MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET slice on
        what it received (returns as soon as it is applied), else a short sleep."""
        received = received_position(status, mariadb=(await s.dialect()).is_mariadb)
        if received:
            await wait_gtid(s, received, max(0.01, min(self.slice_s, remaining)))
        else:
            await asyncio.sleep(max(0.0, min(0.05, remaining)))

    # -- steps ---------------------------------------------------------------------------------------
    async def _stop_io(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """STOP SLAVE IO_THREAD on every replica, so nothing more arrives should the old master answer
        again mid-failover, and what each replica holds stops changing. A SQL thread stopped without an
        error is started so the replica applies what it received (orchestrator's StopReplicationNicely
        does the same): while the IO thread still runs, before stopping it; when both threads were
        stopped already, by relay log coordinates (`apply_relay_log`: MariaDB would discard the relay log,
        and with it every transaction only this replica had received)."""

        async def action(s: FencedSession) -> str | None:
            status = await replication_status(s)
            if status is None:
                return "not a replica"
            note = None
            io_runs = status.io_state is not IOThreadState.NO
            stopped = not status.sql_running and not status.last_sql_errno
            if stopped and (io_runs or await self._left(s, status)):
                note = await apply_relay_log(s, status) or None
            if io_runs:
                await stop_replication(s, "IO_THREAD")
            return note

        notes, errors = await self._each(spec.targets, fence, action, bounded=False)
        return self._result(spec, notes, errors)

    async def _drain_all(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """Every replica (IO thread stopped) applies what it received, in parallel, for up to
        `apply_timeout_s` (InstanceBulkOperationsWaitTimeoutSeconds, orchestrator's bound on
        StopReplicationNicely) in all. Not waited for: a replica whose SQL thread stopped with an error
        (it cannot apply), and a delayed one (SQL_Delay > 0 applies nothing for hours; if it holds what
        nobody else has it becomes the two-step intermediate, and `wait-applied` lifts its delay). Never
        fails: what is left unapplied is reported per replica, and the ranking that follows counts it
        as received (`DrainState.DONE`)."""
        limit = self.options.apply_timeout_s
        deadline = time.monotonic() + limit

        async def action(s: FencedSession) -> str | None:
            started = time.monotonic()
            first = True
            while True:
                status = await replication_status(s)
                if status is None:
                    return "not a replica"
                if status.last_sql_errno:
                    error = " ".join(status.last_sql_error.split())[:200]
                    raise ReplicationCommandError(
                        f"SQL thread stopped [{status.last_sql_errno}] ({error}): cannot apply its relay log"
                    )
                left = await self._left(s, status)
                if not left:
                    return None if first else f"applied in {time.monotonic() - started:.3f}s"
                first = False
                if status.sql_delay > 0:
                    raise ReplicationCommandError(f"delayed by {status.sql_delay} s, not waited for ({left})")
                if not status.sql_running:
                    raise ReplicationCommandError(f"SQL thread stopped ({left})")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReplicationCommandError(f"relay log not applied within {limit:g}s ({left})")
                await self._wait_some(s, status, remaining)

        notes, errors = await self._each(spec.targets, fence, action, bounded=False)
        result = self._result(spec, notes, errors)
        n = len(spec.targets)
        head = f"{n - len(errors)} of {n} replicas have applied what they received"
        result.detail = f"{head}; {result.detail}" if result.detail else head
        return result

    async def _wait_applied(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """The data holder (successor, or intermediate) applies its relay log before anyone is served
        from it: its SQL_Delay is lifted first (a delayed intermediate), a stopped SQL thread started,
        both without losing the relay log (`apply_relay_log`); then `_drain`."""
        (key,) = spec.targets
        s = self._session(key, fence)
        try:
            status = await replication_status(s)
            if status is None:
                return StepResult(StepOutcome.SKIPPED, detail=f"{key} is no longer a replica")
            lifted = ""
            if status.sql_delay > 0 or (not status.sql_running and not status.last_sql_errno):
                lifted = await apply_relay_log(s, status, lift_delay=True)
            result = await self._drain(s, self.options)
            if lifted:
                result.detail = f"{lifted}; {result.detail}"
        except (ReplicationCommandError, MySQLError) as exc:
            result = StepResult(StepOutcome.FAILED, error=f"{key}: {_describe(exc)}")
        if result.outcome is StepOutcome.FAILED:
            result.failed = {key: result.error or "failed"}
        return result

    async def _drain(self, s: FencedSession, o: ExecutionOptions) -> StepResult:
        """Wait for the SQL thread to apply the relay log. With DelayMasterPromotionIfSQLThreadNotUpToDate
        wait as long as it progresses (up to `delay_max_s`); otherwise up to `apply_timeout_s`, then go on
        (orchestrator's behaviour: what was not applied is lost, and the audit says so)."""
        started = time.monotonic()
        limit = o.delay_max_s if o.delay_promotion else o.apply_timeout_s
        last_mark: tuple[str, int] | None = None
        last_progress = started
        while True:
            status = await replication_status(s)
            if status is None:
                return StepResult(StepOutcome.SKIPPED, detail=f"{s.key} is no longer a replica")
            left = await self._left(s, status)
            if not left:
                waited = time.monotonic() - started
                return StepResult(StepOutcome.DONE, detail=f"relay log applied (waited {waited:.3f}s)")
            if not status.sql_running:
                if status.last_sql_errno:
                    error = " ".join(status.last_sql_error.split())[:200]
                    return StepResult(
                        StepOutcome.FAILED,
                        error=f"SQL thread of {s.key} stopped [{status.last_sql_errno}]: {error}",
                    )
                await apply_relay_log(s, status)  # stopped by hand since: restart it, relay log kept
                continue
            mark = (status.relay_log_file, status.relay_log_pos)  # moves as it applies, in every mode
            now = time.monotonic()
            if mark != last_mark:
                last_mark, last_progress = mark, now
            if o.delay_promotion and now - last_progress > o.delay_stall_s:
                return StepResult(
                    StepOutcome.FAILED,
                    error=f"{s.key}: SQL thread made no progress for {o.delay_stall_s:g}s ({left})",
                )
            if now - started > limit:
                if o.delay_promotion:
                    return StepResult(
                        StepOutcome.FAILED, error=f"{s.key}: relay log not applied in {limit:g}s ({left})"
                    )
                return StepResult(
                    StepOutcome.DONE,
                    detail=f"relay log not applied within {limit:g}s ({left}); promoting without it",
                    errors={str(s.key): f"relay log not fully applied ({left})"},
                )
            await self._wait_some(s, status, limit - (now - started))

    async def _repoint(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """Each target replicates from `spec.source` by GTID, verified (`_replicate_from`). A replica that
        has received transactions the source's binary logs lack is not touched (a repoint would discard
        its relay log, and those transactions with it): it is lost, with the reason."""
        source = spec.source
        assert source is not None
        position: list[str] = []
        lock = asyncio.Lock()

        async def source_position() -> str:
            async with lock:
                if not position:
                    position.append(await binlog_gtid_position(self._session(source, fence)))
            return position[0]

        semi_sync = set(record.plan.semi_sync_replicas) if record.plan is not None else set()

        async def action(s: FencedSession) -> str | None:
            status = await replication_status(s)
            streaming = status is not None and status.master == source and status.replicating
            if streaming and status is not None and not (status.last_io_errno or status.last_sql_errno):
                semi = f"; {await set_semi_sync(s, master=False, on=True)}" if s.key in semi_sync else ""
                return f"already replicating from {source}{semi}"
            if status is not None:
                await self._keeps_relay_log(s, status, source, source_position)
            await stop_replication(s)
            # semi-sync replica side switched on while stopped: it takes effect as the IO thread starts
            semi = f"; {await set_semi_sync(s, master=False, on=True)}" if s.key in semi_sync else ""
            return await self._replicate_from(s, source) + semi

        notes, errors = await self._each(spec.targets, fence, action)
        result = self._result(spec, notes, errors)
        result.lost = {k: f"could not be repointed under {source}: {v}" for k, v in errors.items()}
        return result

    async def _keeps_relay_log(
        self,
        s: FencedSession,
        status: ReplicationStatus,
        source: InstanceKey,
        source_position: Callable[[], Awaitable[str]],
    ) -> None:
        """Raise unless everything `s` received and has not applied yet is in `source`'s binary logs
        (judged by GTID; without GTIDs there is nothing to compare across servers)."""
        mariadb = (await s.dialect()).is_mariadb
        received = received_position(status, mariadb=mariadb)
        if not received or not await self._left(s, status):
            return
        have = await source_position()
        if _covers(have, received, mariadb=mariadb) is False:
            raise ReplicationCommandError(
                f"{s.key} has received {received}, and {source} has only {have or 'nothing'}: not repointed "
                "(its relay log would be discarded, and the transactions only it has with it)"
            )

    async def _replicate_from(self, s: FencedSession, source: InstanceKey) -> str:
        """Point a stopped replica at `source` by GTID, start it and wait until it streams from it
        (repoint and relocate share this); each statement is fenced by the session."""
        await change_master_gtid(s, source, self.repl)
        await start_replication(s)
        return await self._await_streaming(s, source)

    async def _await_streaming(self, s: FencedSession, source: InstanceKey) -> str:
        """Poll (each read fenced and bounded) until `s` streams from `source`: its IO thread connected
        (`Yes`) and reading the source's binary log (`Master_Log_File` set: the source accepted the
        requested position), its SQL thread running, no error. An IO thread that stopped with an error
        (1236: the source lacks what the replica asks for, ...) or a SQL error fails at once; an IO
        thread still connecting after `follow_timeout_s` (InstanceBulkOperationsWaitTimeoutSeconds)
        fails then."""
        limit = self.options.follow_timeout_s
        started = time.monotonic()
        while True:
            status = await replication_status(s)
            waited = time.monotonic() - started
            if status is None or status.master != source:
                now = status.master if status is not None else "nothing"
                raise ReplicationCommandError(f"replicates from {now}, not {source}")
            if status.last_sql_errno:
                error = " ".join(status.last_sql_error.split())[:200]
                raise ReplicationCommandError(f"SQL thread stopped [{status.last_sql_errno}]: {error}")
            io_error = f"[{status.last_io_errno}] {' '.join(status.last_io_error.split())[:200]}"
            if status.io_state is IOThreadState.NO and status.last_io_errno and not is_connect_error(status):
                raise ReplicationCommandError(f"cannot replicate from {source}: IO thread stopped {io_error}")
            if status.replicating and status.read_master_log_file and not status.last_io_errno:
                return f"streaming from {source} (verified in {waited * 1000:.0f} ms)"
            if waited > limit:
                io = status.io_state.value + (f" {io_error}" if status.last_io_errno else "")
                raise ReplicationCommandError(
                    f"not streaming from {source} within {limit:g}s (IO thread {io}, "
                    f"SQL thread {'Yes' if status.sql_running else 'No'})"
                )
            await asyncio.sleep(0.005 if waited < 0.1 else 0.05)

    async def _wait_caught_up(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        result = await self._catch_up(spec, fence)
        if result.outcome is StepOutcome.FAILED:
            result.failed = {spec.targets[0]: result.error or "failed"}
        return result

    async def _catch_up(self, spec: StepSpec, fence: Fence) -> StepResult:
        (successor,) = spec.targets
        source = spec.source
        assert source is not None
        try:
            position = await binlog_gtid_position(self._session(source, fence))
            started = time.monotonic()
            s = self._session(successor, fence)
            if await replication_status(s) is None:
                return StepResult(StepOutcome.SKIPPED, detail=f"{successor} is no longer a replica")
            while True:
                if await wait_gtid(s, position, self.slice_s):
                    waited = time.monotonic() - started
                    return StepResult(
                        StepOutcome.DONE,
                        detail=f"{successor} has {source}'s {position} (waited {waited:.3f}s)",
                    )
                if time.monotonic() - started > self.options.catch_up_timeout_s:
                    return StepResult(
                        StepOutcome.FAILED,
                        error=f"{successor} did not reach {source}'s {position} within "
                        f"{self.options.catch_up_timeout_s:g}s",
                    )
        except (ReplicationCommandError, MySQLError) as exc:
            return StepResult(StepOutcome.FAILED, error=_describe(exc))

    async def _stop_replication(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        async def action(s: FencedSession) -> str | None:
            if await replication_status(s) is None:
                return "not a replica"
            await stop_replication(s)
            return None

        notes, errors = await self._each(spec.targets, fence, action)
        return self._result(spec, notes, errors)

    async def _promote(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """STOP SLAVE; RESET SLAVE ALL; read_only=0. A failure is `reversible` (the next candidate may be
        tried) only while the successor is provably still a read-only replica: at STOP SLAVE.

        MasterFailoverDetachReplicaMasterHost: the promoted server must never replicate from its old
        source again. RESET SLAVE ALL forgets that source already; with ApplyMySQLPromotionAfterMaster-
        Failover off (no reset), its MASTER_HOST is detached instead (`//host`, reversible)."""
        apply = self.options.apply_promotion
        detach = self.options.detach_master_host
        reached: dict[InstanceKey, str] = {}

        async def action(s: FencedSession) -> str | None:
            reached[s.key] = "stop"
            await stop_replication(s)
            if not apply:
                note = "replication stopped; ApplyMySQLPromotionAfterMasterFailover is off"
                if detach:
                    reached[s.key] = "detach"
                    detached = await set_master_host(s, detach=True)
                    note += f"; {detached} (MasterFailoverDetachReplicaMasterHost)"
                return note
            reached[s.key] = "reset"
            await reset_replica_all(s)
            reached[s.key] = "writable"
            semi = ""
            if record.plan is not None and record.plan.semi_sync_master:  # before it takes writes
                semi = "; " + await set_semi_sync(s, master=True, on=True)
            await set_read_only(s, False)
            return "writable" + semi

        notes, errors = await self._each(spec.targets, fence, action)
        result = self._result(spec, notes, errors)
        result.reversible = all(reached.get(k) == "stop" for k in result.failed)
        return result

    async def _downtime_lost(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        if self.downtime is None:
            return StepResult(StepOutcome.SKIPPED, detail="no downtime store")
        errors: dict[str, str] = {}
        now = self.clock()
        for key in spec.targets:
            fence.check()
            item = lost_downtime(
                key,
                now=now,
                minutes=self.options.lost_downtime_minutes,
                epoch=fence.epoch,
                recovery_uid=record.uid,
            )
            try:
                await self.downtime(item)
            except Exception as exc:  # noqa: BLE001 - best effort, recorded
                errors[str(key)] = str(exc)
        detail = f"{len(spec.targets) - len(errors)} downtimed for {self.options.lost_downtime_minutes:g} min"
        return StepResult(StepOutcome.DONE, detail=detail, errors=errors)

    async def _detach_lost(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        async def action(s: FencedSession) -> str | None:
            if await replication_status(s) is None:
                return "not a replica"
            await stop_replication(s)
            return "replication stopped"

        notes, errors = await self._each(spec.targets, fence, action)
        result = self._result(spec, notes, errors)
        result.outcome = StepOutcome.DONE
        return result

    async def _set_read_only(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """read_only (+ super_read_only on MySQL with UseSuperReadOnly) on a master that may be alive.
        An unreachable one is noted, not fatal: it is fenced if it ever comes back (old_master.py). Its
        connection is `failed_pool`'s: a hung server costs a short connect timeout, a live one gets the
        full statement timeout."""
        sro = self.options.super_read_only

        async def action(s: FencedSession) -> str | None:
            await set_read_only(s, True, super_read_only=sro)
            return "read_only set"

        notes, errors = await self._each(spec.targets, fence, action, pool=self.failed_pool)
        return StepResult(StepOutcome.DONE, detail="; ".join(f"{k}: {v}" for k, v in notes.items()),
                          errors={str(k): v for k, v in errors.items()})  # fmt: skip

    async def _relocate(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """Repoint each replica under `spec.source` by GTID. Replication is stopped first, then the
        source (when it is itself a replica, i.e. a sibling) is waited for until it has applied
        everything the replica applied: following a source that is behind would ask it for
        transactions it does not have yet."""
        source = spec.source
        assert source is not None
        timeout = self.options.catch_up_timeout_s

        async def action(s: FencedSession) -> str | None:
            status = await replication_status(s)
            if status is not None and status.master == source and status.replicating:
                return f"already replicating from {source}"
            await stop_replication(s)
            position = await applied_gtid_position(s)
            note = None
            src = self._session(source, fence)
            if await replication_status(src) is not None:
                started = time.monotonic()
                while not await wait_gtid(src, position, self.slice_s):
                    if time.monotonic() - started > timeout:
                        raise ReplicationCommandError(
                            f"{source} did not reach {s.key}'s position {position} within {timeout:g}s"
                        )
                waited = time.monotonic() - started
                note = f"{source} had {position} (waited {waited:.3f}s)" if waited > 0.05 else None
            streaming = await self._replicate_from(s, source)
            return f"{note}; {streaming}" if note else streaming

        notes, errors = await self._each(spec.targets, fence, action)
        result = self._result(spec, notes, errors)
        result.lost = {k: f"could not be relocated under {source}: {v}" for k, v in errors.items()}
        if errors and len(errors) == len(spec.targets):
            result.outcome = StepOutcome.FAILED
            result.error = f"no replica could be relocated under {source}"
        return result

    async def _switch(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """The write outage of a graceful takeover, kept as short as possible: both connections are open
        (and checked) before it starts; old master read_only → its binlog position → the successor has
        applied it (MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET, in slices) → STOP SLAVE, RESET SLAVE
        ALL, read_only=0 on the successor. If the successor does not catch up within `takeover_wait_s`
        the old master is made writable again and the step fails. Re-run after a leader change it is
        idempotent: a successor that is no longer a replica was promoted already."""
        (target,) = spec.targets
        old = spec.source
        assert old is not None
        o = self.options
        oc, tc = self._session(old, fence), self._session(target, fence)
        try:
            if await replication_status(tc) is None:
                await set_read_only(tc, False)
                return StepResult(StepOutcome.DONE, detail=f"{target} was already promoted")
            was_read_only = await read_only(oc)
            started = time.monotonic()
            await set_read_only(oc, True, super_read_only=o.super_read_only)
            position = await binlog_gtid_position(oc)
            while not await wait_gtid(tc, position, self.slice_s):
                if time.monotonic() - started > o.takeover_wait_s:
                    if not was_read_only:
                        await set_read_only(oc, False)
                    return StepResult(
                        StepOutcome.FAILED,
                        error=f"{target} did not reach {old}'s {position} within {o.takeover_wait_s:g}s; "
                        f"{old} is {'read-only as before' if was_read_only else 'writable again'}",
                    )
            caught_up = time.monotonic()
            await stop_replication(tc)
            await reset_replica_all(tc)
            await set_read_only(tc, False)
            ended = time.monotonic()
        except (ReplicationCommandError, MySQLError) as exc:
            return StepResult(StepOutcome.FAILED, error=_describe(exc))
        outage = round((ended - started) * 1000.0, 3)
        return StepResult(
            StepOutcome.DONE,
            detail=f"{old} read_only at {position}; {target} caught up in "
            f"{(caught_up - started) * 1000:.1f} ms and is writable; write outage {outage:.1f} ms",
            outage_ms=outage,
        )

    async def _demote(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        """The old master (read-only already) becomes a replica of the new one, resuming right after
        its own last transaction; replication is started only when `spec.start_replication`. One
        statement per fence check (the session checks before each)."""
        source = spec.source
        assert source is not None
        start, sro = spec.start_replication, self.options.super_read_only

        async def action(s: FencedSession) -> str | None:
            status = await replication_status(s)
            if status is not None and status.master == source and (status.replicating or not start):
                return f"already replicating from {source}"
            if status is not None:
                await stop_replication(s)
            await set_read_only(s, True, super_read_only=sro)
            position = await prepare_demoted_master(s)
            await change_master_gtid(s, source, self.repl)
            if not start:
                return f"replicates from {source} once started (at {position or 'gtid_executed'})"
            await start_replication(s)
            return f"replicates from {source} (from {position or 'gtid_executed'})"

        notes, errors = await self._each(spec.targets, fence, action)
        return self._result(spec, notes, errors)
