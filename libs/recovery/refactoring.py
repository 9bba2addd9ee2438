"""Topology refactoring and replication control, carried out by the recovery leader.

`Refactoring.run(CommandRequest)` answers the `RefactorVerb`s of `baton.cmd.recovery.<verb>`:
1. **the cluster's lock**: a `RecoveryRecord` of kind OPERATION (`command = "operation:<verb>"`) is
   registered in `baton_recoveries` like a recovery's, so a refactoring and a failover never run on one
   cluster at once: an open recovery makes the operation wait (up to `LOCK_WAIT_S`, then `busy`), an
   open operation makes a failover wait (gate refusal `operation`, retried by the leader every few s);
2. **fresh look**, under the lock: the instance's cluster (and the target's) probed now;
3. **decision** (pure, `libs/topology/refactor.py`): which replica goes under which source, or why not
   (orchestrator's words);
4. **fenced execution**: every statement through a `FencedSession` under the leader's epoch (the SQL is
   `libs/mysql/replication.py`'s, in the instance's dialect); each action is a step of the record;
5. **release**: the record is closed and the cluster's record becomes again the recovery it displaced
   (`RecordStore.release`); the outcome is **audited** on `baton.audit.refactor` (who, what, outcome,
   steps) and the touched instances are probed again (probe-now) so the API shows the new tree at once.
An operation is never resumed: one a dead leader left open is closed by the next leader's sweep as
aborted (`AbandonedOperation`, the pipeline's `Collaborators.kinds` entry), and leaves no
anti-flapping block. It is not a recovery: no `baton.recovery.*` event while it runs, so
`audit-recovery` does not list it; only such an abandoned one appears there once, aborted, so an
operator sees that a refactoring was cut short.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from libs.bus.messages import publish_event
from libs.bus.subjects import audit_subject
from libs.errors import LeadershipLost, ReplicationCommandError
from libs.models import Event, Flavor, InstanceKey, InstanceSnapshot, ReplicationStatus
from libs.models.operator import CommandReply, CommandRequest, CommandStatus, RefactorVerb
from libs.mysql.connection import ConnectionPool, Credentials
from libs.mysql.fenced import FencedSession
from libs.mysql.replication import (
    applied_gtid_position,
    binlog_gtid_position,
    prepare_demoted_master,
    replication_status,
    reset_replica_all,
    set_master_host,
    set_read_only,
    set_semi_sync,
    start_replication,
    stop_replication,
    wait_gtid,
    wait_relay_log_applied,
)
from libs.recovery import errant_fixes
from libs.recovery.audit import OPERATION_COMMAND, Outcome, RecoveryRecord, StepOutcome
from libs.recovery.executor import MySQLExecutor
from libs.recovery.fence import Fence
from libs.recovery.pipeline import RecoveryAborted, RecoveryPipeline
from libs.recovery.record_store import ClusterBusy
from libs.topology import refactor
from libs.topology.fresh import fresh_views, view_holding
from libs.topology.refactor import Known, Move, MovePlan
from libs.topology.view import ClusterView

log = logging.getLogger(__name__)
AUDIT_KIND = "refactor"
OPERATION_CODE = "Operation"
LOCK_WAIT_S = 10.0  # how long an operation waits for a running recovery of its cluster before `busy`

Emit = Callable[[Event], Awaitable[None]]
_REFRESHING: set[asyncio.Task[None]] = set()  # background refreshes after operations (strong references)
Action = Callable[[FencedSession], Awaitable[str]]


class Refused(Exception):
    """A refusal, carried to the reply."""

    def __init__(self, message: str, status: CommandStatus = CommandStatus.REFUSED) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Work:
    """What one verb does: a move plan, or one action on the instance (replication control)."""

    plan: MovePlan | None = None
    action: Action | None = None
    message: str = ""
    target: InstanceKey | None = None  # where `action` runs, when not on the instance itself


class AbandonedOperation:
    """`KindSteps` of RecoveryKind.OPERATION: an operation left open by a leader that died is closed
    as aborted, never resumed (its statements may or may not have run: the topology says which)."""

    async def run(self, pipeline: RecoveryPipeline, record: RecoveryRecord, fence: Fence) -> None:
        verb = record.command.removeprefix(OPERATION_COMMAND)
        raise RecoveryAborted(
            Outcome.ABORTED,
            f"{verb} on {record.failed} was abandoned by the leader of epoch {record.epochs[0]}: "
            "closed, not resumed (check the topology)",
        )

    def summary(self, record: RecoveryRecord) -> str:  # pragma: no cover - run() always aborts
        return record.reason


class Refactoring:
    """The leader's executor of `RefactorVerb`s (see the module docstring)."""

    def __init__(
        self,
        pipeline: RecoveryPipeline,
        fence: Fence,
        pool: ConnectionPool,
        creds: Credentials,
        executor: MySQLExecutor,
        *,
        emit: Emit | None = None,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.pipeline, self.fence, self.pool, self.creds = pipeline, fence, pool, creds
        self.executor, self.emit = executor, emit
        self.timeout_s = executor.options.statement_timeout_s
        self.max_lag_s = executor.options.takeover_wait_s
        self.catch_up_s = executor.options.catch_up_timeout_s
        self.lock_wait_s = lock_wait_s

    @classmethod
    def of(cls, pipeline: RecoveryPipeline, fence: Fence) -> Refactoring | None:
        """Built from the pipeline's MySQL executor (its action pool and credentials) and event sink
        (its JetStream, for the audit); None when the pipeline does not act on MySQL."""
        executor = pipeline.c.executor
        if not isinstance(executor, MySQLExecutor):
            return None
        js = getattr(pipeline.c.events, "js", None)
        emit: Emit | None = None
        if js is not None:

            async def emit_js(event: Event) -> None:
                await publish_event(js, audit_subject(AUDIT_KIND), event)

            emit = emit_js
        return cls(pipeline, fence, executor.pool, executor.creds, executor, emit=emit)

    # -- entry point -----------------------------------------------------------------------------------
    async def run(self, req: CommandRequest) -> CommandReply:
        try:
            verb = RefactorVerb(req.verb)
        except ValueError:
            return _reply(CommandStatus.BAD_REQUEST, f"unknown verb {req.verb}")
        key = req.instance
        if key is None:
            return _reply(CommandStatus.BAD_REQUEST, f"{verb.value} needs an instance")
        known_view = view_holding(fresh_views(self.pipeline.c.known()), key)
        if known_view is None:
            return _reply(CommandStatus.NOT_FOUND, f"instance {key} not found")
        record = self._new_record(verb, req, known_view)
        self.pipeline._claims.add(record.uid)  # the sweep leaves a running operation alone
        try:
            previous = await self._lock(record)
            if isinstance(previous, ClusterBusy):
                message = f"{verb.value} refused: cluster {known_view.alias} is busy: {previous}"
                await self._audit(req, known_view, "busy", message)
                return _reply(CommandStatus.BUSY, message)
            try:
                view, known = await self._look(key, req.destination)  # fresh, under the lock
                if view is None:
                    raise Refused(f"instance {key} not found", CommandStatus.NOT_FOUND)
                if req.destination is not None and req.destination not in known:
                    raise Refused(f"instance {req.destination} not found", CommandStatus.NOT_FOUND)
                work = self._decide(verb, req, known)
            except Refused as refusal:
                record.close(Outcome.SKIPPED, refusal.message, self.pipeline.c.clock())
                await self._release(record, previous)
                await self._audit(req, known_view, "refused", refusal.message)
                return _reply(refusal.status, refusal.message)
            except BaseException:
                record.close(
                    Outcome.ABORTED, "refused: looking at the topology failed", self.pipeline.c.clock()
                )
                await self._release(record, previous)
                raise
            return await self._execute(verb, req, view, work, record, previous)
        finally:
            self.pipeline._claims.discard(record.uid)

    def _new_record(self, verb: RefactorVerb, req: CommandRequest, view: ClusterView) -> RecoveryRecord:
        assert req.instance is not None
        epoch = self.fence.epoch
        return RecoveryRecord(
            incident=f"{OPERATION_COMMAND}{uuid.uuid4().hex}",
            code=OPERATION_CODE,
            cluster=view.name,
            alias=view.alias,
            failed=req.instance,
            command=f"{OPERATION_COMMAND}{verb.value}",
            requested_by=req.requested_by,
            forced=True,
            designated=req.destination,
            epoch=epoch,
            epochs=[epoch],
            node=self.pipeline.node,
            started_at=self.pipeline.c.clock(),
        )

    async def _lock(self, record: RecoveryRecord) -> RecoveryRecord | ClusterBusy | None:
        """Register `record` as the cluster's open record (the recoveries' lock), waiting up to
        `lock_wait_s` for an open recovery or operation to end (a detection the refactoring itself
        caused is re-checked and closed within a second or two). Returns the closed record it
        displaced (None when none), or the ClusterBusy that outlasted the wait."""
        store = self.pipeline.c.store
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            self.fence.check()
            try:
                previous = await store.register(record)
            except ClusterBusy as busy:
                if time.monotonic() >= deadline:
                    return busy
                await asyncio.sleep(0.1)
                continue
            return previous

    async def _release(self, record: RecoveryRecord, previous: RecoveryRecord | None) -> None:
        """Close the lock: the cluster's latest record becomes again the recovery the operation displaced
        (so "already handled", acknowledgements and the old-master watch still see it), or the closed
        operation when there was none. The operation itself is kept by its audit event."""
        try:
            await self.pipeline.c.store.release(record, previous)
        except LeadershipLost as exc:
            log.warning("operation %s: lock not released by this leader: %s", record.uid, exc)

    # -- looking ---------------------------------------------------------------------------------------
    async def _look(
        self, key: InstanceKey, target: InstanceKey | None
    ) -> tuple[ClusterView | None, dict[InstanceKey, InstanceSnapshot]]:
        """The instance's cluster (and the target's) probed now; its view and every latest snapshot."""
        c = self.pipeline.c
        known = c.known()
        wanted = {key} | ({target} if target else set())
        views = [v for v in fresh_views(known) if any(v.get(k) for k in wanted)]
        keys = sorted({s.key for v in views for s in v.instances} | wanted)
        fresh = await c.probe(keys)
        now = fresh_views(known, fresh)
        latest = {k: s.last_probe for k, s in known.items()} | dict(fresh)
        return view_holding(now, key), latest

    # -- deciding (pure functions of libs/topology/refactor.py, plus the actions of the control verbs) --
    def _decide(self, verb: RefactorVerb, req: CommandRequest, known: Known) -> Work:
        key, dest = req.instance, req.destination
        assert key is not None
        lag = self.max_lag_s
        V = RefactorVerb
        plan: MovePlan | None = None
        if verb in (V.RELOCATE, V.MOVE_GTID, V.MATCH):
            plan = refactor.relocate(known, key, _need(dest, verb), verb.value)
        elif verb is V.REPOINT:
            info = known[key]
            target = dest or info.master_key
            if target is None:
                raise Refused(f"instance is not a replica: {key}")
            plan = refactor.relocate(known, key, target, "repoint")
        elif verb in (V.MOVE_UP, V.MATCH_UP):
            plan = refactor.move_up(known, key, max_lag_s=lag, verb=verb.value)
        elif verb is V.MOVE_BELOW:
            plan = refactor.move_below(known, key, _need(dest, verb), max_lag_s=lag)
        elif verb in (V.RELOCATE_REPLICAS, V.MOVE_REPLICAS_GTID):
            plan = refactor.bulk(known, key, _need(dest, verb), verb=verb.value, pattern=req.argument)
        elif verb in (V.REPOINT_REPLICAS, V.MOVE_UP_REPLICAS, V.MATCH_UP_REPLICAS, V.TAKE_SIBLINGS):
            plan = refactor.bulk(known, key, dest, verb=verb.value, pattern=req.argument)
        elif verb is V.TAKE_MASTER:
            plan = refactor.take_master(known, key)
        elif verb is V.MAKE_CO_MASTER:
            plan = refactor.make_co_master(known, key, max_lag_s=lag)
        elif verb is V.REGROUP_REPLICAS:
            plan = refactor.regroup_replicas(known, key)
        elif verb is V.MOVE_EQUIVALENT:
            plan = refactor.move_equivalent(known, key, _need(dest, verb))
        if plan is not None:
            if not plan.ok:
                raise Refused(plan.refused or "refused")
            return Work(plan=plan, message=plan.message)
        if verb in (V.GTID_ERRANT_RESET_MASTER, V.GTID_ERRANT_INJECT_EMPTY):
            return self._errant(verb, known, key)
        return self._control(verb, req, known[key], known)

    def _errant(self, verb: RefactorVerb, known: Known, key: InstanceKey) -> Work:
        if verb is RefactorVerb.GTID_ERRANT_RESET_MASTER:
            fix = refactor.errant_reset(known, key)
            if fix.refused:
                raise Refused(fix.refused)
            return Work(
                action=lambda s: errant_fixes.reset_master(s, fix.errant),
                message=f"Removed errant GTID on {key} and issued a RESET MASTER",
            )
        fix = refactor.errant_inject(known, key)
        if fix.refused:
            raise Refused(fix.refused)
        count = errant_fixes.injection_count(fix.errant, mariadb=known[key].flavor is Flavor.MARIADB)
        return Work(
            action=lambda s: errant_fixes.inject_empty(s, fix.errant, self._session(key)),
            message=f"Have injected {count} transactions on cluster master {fix.target}",  # orchestrator's
            target=fix.target,
        )

    def _control(self, verb: RefactorVerb, req: CommandRequest, info: InstanceSnapshot, known: Known) -> Work:
        """The replication-control verbs: one action on the instance."""
        V = RefactorVerb
        key = info.key
        if not info.reachable:
            raise Refused(f"{key}: last check invalid")
        replica_only = {
            V.STOP_REPLICA, V.STOP_REPLICA_NICE, V.START_REPLICA, V.RESTART_REPLICA, V.RESET_REPLICA,
            V.DETACH_REPLICA_MASTER_HOST, V.REATTACH_REPLICA_MASTER_HOST, V.SKIP_QUERY, V.DELAY_REPLICATION,
            V.ENABLE_SEMI_SYNC_REPLICA, V.DISABLE_SEMI_SYNC_REPLICA,
        }  # fmt: skip
        if verb in replica_only and info.replication is None:
            raise Refused(f"instance is not a replica: {key}")
        if verb in (V.DETACH_REPLICA, V.REATTACH_REPLICA):
            raise Refused(
                f"{verb.value}: Baton replicates by GTID and keeps no binlog coordinates to mangle on {key}; "
                "use detach-replica-master-host / reattach-replica-master-host"
            )
        r = info.replication
        if verb is V.RESET_REPLICA and r is not None and (r.sql_running or r.io_state.value != "No"):
            raise Refused(f"Cannot reset replication on: {key} because replication threads are not stopped")
        if (
            verb is V.DETACH_REPLICA_MASTER_HOST
            and r is not None
            and r.master
            and r.master.host.startswith("//")
        ):
            raise Refused(f"instance already detached: {key}")
        if verb is V.REATTACH_REPLICA_MASTER_HOST and not (r and r.master and r.master.host.startswith("//")):
            raise Refused(f"instance does not seem to be detached: {key}")
        if verb is V.DELAY_REPLICATION:
            text = req.argument.strip()
            if not text.isdigit() or int(text) > 2**31 - 1:
                raise Refused(f"delay-replication: bad number of seconds {text!r}", CommandStatus.BAD_REQUEST)
        if verb is V.PURGE_BINARY_LOGS:
            reason = refactor.purge_refusal(known, key, req.argument)
            if reason:
                raise Refused(reason)
        actions: dict[RefactorVerb, tuple[Action, str]] = {
            V.STOP_REPLICA: (lambda s: _stop(s), f"Replica stopped: {key}"),
            V.STOP_REPLICA_NICE: (lambda s: self._stop_nicely(s), f"Replica stopped nicely: {key}"),
            V.START_REPLICA: (lambda s: _start(s), f"Replica started: {key}"),
            V.RESTART_REPLICA: (lambda s: _restart(s), f"Replica restarted: {key}"),
            V.RESET_REPLICA: (lambda s: _reset(s), f"Replica reset on {key}"),
            V.DETACH_REPLICA_MASTER_HOST: (
                lambda s: _set_master_host(s, detach=True),
                f"Replica detached: {key}",
            ),
            V.REATTACH_REPLICA_MASTER_HOST: (
                lambda s: _set_master_host(s, detach=False),
                f"Replica reattached: {key}",
            ),
            V.SKIP_QUERY: (lambda s: _skip_query(s), f"Query skipped on {key}"),
            V.DELAY_REPLICATION: (
                lambda s: _delay(s, int(req.argument.strip() or 0)),
                f"Replication delayed: {key}",
            ),
            V.SET_READ_ONLY: (lambda s: _read_only(s, True), f"Server set as read-only: {key}"),
            V.SET_WRITEABLE: (lambda s: _read_only(s, False), f"Server set as writeable: {key}"),
            V.FLUSH_BINARY_LOGS: (lambda s: _write(s, "FLUSH BINARY LOGS"), f"Binary logs flushed on: {key}"),
            V.PURGE_BINARY_LOGS: (
                lambda s: _write(s, "PURGE BINARY LOGS TO %s", (req.argument,)),
                f"Binary logs purged on: {key}",
            ),
            V.ENABLE_SEMI_SYNC_MASTER: (_semi(master=True, on=True), f"master semi-sync enabled: {key}"),
            V.DISABLE_SEMI_SYNC_MASTER: (_semi(master=True, on=False), f"master semi-sync disabled: {key}"),
            V.ENABLE_SEMI_SYNC_REPLICA: (_semi(master=False, on=True), f"replica semi-sync enabled: {key}"),
            V.DISABLE_SEMI_SYNC_REPLICA: (_semi(master=False, on=False), f"replica semi-sync disabled: {key}"),  # noqa: E501
        }  # fmt: skip
        if verb not in actions:
            raise Refused(f"{verb.value}: not a verb of this leader", CommandStatus.BAD_REQUEST)
        action, message = actions[verb]
        return Work(action=action, message=message)

    # -- the lock, the record, the audit -----------------------------------------------------------------
    async def _execute(
        self,
        verb: RefactorVerb,
        req: CommandRequest,
        view: ClusterView,
        work: Work,
        record: RecoveryRecord,
        previous: RecoveryRecord | None,
    ) -> CommandReply:
        c = self.pipeline.c
        key = req.instance
        assert key is not None
        touched: list[InstanceKey] = [key]
        outcome, reason = Outcome.SUCCEEDED, work.message
        try:
            if work.plan is not None:
                touched.extend(work.plan.touched)
                record.participating = sorted(set(work.plan.touched))
                errors = await self._moves(work.plan, record)
                if errors and len(errors) == len(work.plan.moves):
                    outcome, reason = Outcome.FAILED, "; ".join(errors)
                elif errors or work.plan.skipped:
                    skipped = [f"{k}: {why}" for k, why in work.plan.skipped]
                    reason = f"{work.message}; not moved: " + "; ".join([*errors, *skipped])
            elif work.action is not None:
                where = work.target or key
                touched.append(where)
                await self._step(record, f"{verb.value}:{where}", where, work.action)
        except (LeadershipLost, asyncio.CancelledError):
            raise  # the record stays open: the next leader's sweep closes it as abandoned
        except Exception as exc:  # noqa: BLE001 - every failure is the operation's outcome
            outcome, reason = Outcome.FAILED, _describe(exc)
        record.close(outcome, reason, c.clock())
        await self._release(record, previous)
        await self._audit(req, view, outcome.value, reason, record)
        self._refresh(touched)
        status = CommandStatus.OK if outcome is Outcome.SUCCEEDED else CommandStatus.FAILED
        subject = work.plan.subject if work.plan is not None and work.plan.subject else key
        details = {
            "instance": str(subject),
            "uid": record.uid,
            "steps": [s.model_dump(mode="json") for s in record.steps],
            "moved": [str(m.replica) for m in work.plan.moves] if work.plan is not None else [],
        }
        return _reply(status, reason, details=details)

    async def _step(self, record: RecoveryRecord, name: str, key: InstanceKey, action: Action) -> str:
        c = self.pipeline.c
        record.begin_step(name, c.clock())
        await c.store.save(record)
        try:
            detail = await action(self._session(key))
        except (LeadershipLost, asyncio.CancelledError):
            raise
        except Exception as exc:
            record.end_step(name, c.clock(), StepOutcome.FAILED, error=_describe(exc))
            await c.store.save(record)
            raise
        record.end_step(name, c.clock(), StepOutcome.DONE, detail=detail)
        await c.store.save(record)
        return detail

    async def _moves(self, plan: MovePlan, record: RecoveryRecord) -> list[str]:
        """Each move in order; a failed move is an error of the operation (later ones still run only
        when independent: a chain stops at its first failure)."""
        errors: list[str] = []
        for move in plan.moves:
            try:
                await self._step(record, f"move:{move.replica}", move.replica, self._mover(move))
            except (LeadershipLost, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - recorded; reported in the reply
                errors.append(f"{move.replica}: {_describe(exc)}")
                if plan.chain:
                    break
        return errors

    def _mover(self, move: Move) -> Action:
        return lambda s: self._move(s, move)

    async def _move(self, s: FencedSession, move: Move) -> str:
        """Point `s` at `move.source` by GTID: stop it, wait until the source has applied what it
        applied (when the source is itself a replica), CHANGE MASTER, start, verify it streams."""
        status = await replication_status(s)
        healthy = status is not None and not (status.last_io_errno or status.last_sql_errno)
        if healthy and status and status.master == move.source and status.replicating and uses_gtid(status):
            return f"already replicating from {move.source}"
        if status is not None:
            await stop_replication(s)
        if move.demoted_master:
            position = await prepare_demoted_master(s) or await binlog_gtid_position(s)
        else:
            position = await applied_gtid_position(s)
        source = self._session(move.source)
        note = ""
        if await replication_status(source) is not None and position:
            started = time.monotonic()
            while not await wait_gtid(source, position, self.executor.slice_s):
                if time.monotonic() - started > self.catch_up_s:
                    raise ReplicationCommandError(
                        f"{move.source} did not reach {s.key}'s position {position} "
                        f"within {self.catch_up_s:g}s"
                    )
            note = f"{move.source} had {position}; "
        return note + await self.executor._replicate_from(s, move.source)

    def _session(self, key: InstanceKey) -> FencedSession:
        return FencedSession(self.pool, key, self.creds, self.fence, self.timeout_s)

    async def _stop_nicely(self, s: FencedSession) -> str:
        await stop_replication(s, "IO_THREAD")
        status = await wait_relay_log_applied(s, self.max_lag_s)
        await stop_replication(s, "SQL_THREAD")
        at = f"{status.relay_master_log_file}:{status.exec_master_log_pos}"
        return f"IO thread stopped, relay log applied up to {at}"

    async def _audit(
        self,
        req: CommandRequest,
        view: ClusterView,
        outcome: str,
        message: str,
        record: RecoveryRecord | None = None,
    ) -> None:
        """`baton.audit.refactor`: who asked what, and how it ended (never a secret)."""
        if self.emit is None:
            return
        data: dict[str, Any] = {
            "by": req.requested_by,
            "verb": req.verb,
            "command_id": req.id,
            "instance": str(req.instance) if req.instance else None,
            "destination": str(req.destination) if req.destination else None,
            "argument": req.argument,
            "outcome": outcome,
            "message": message,
        }
        if record is not None:
            data["uid"] = record.uid
            data["steps"] = [s.model_dump(mode="json") for s in record.steps]
        event = Event(
            type=f"refactor.{outcome}",
            source="recovery",
            node=self.pipeline.node,
            cluster=view.name,
            instance=str(req.instance) if req.instance else None,
            epoch=self.fence.epoch,
            data=data,
        )
        try:
            await self.emit(event)
        except Exception as exc:  # noqa: BLE001 - the audit must not turn a done operation into an error
            log.warning("operation %s on %s: audit not published: %s", req.verb, req.instance, exc)

    def _refresh(self, keys: list[InstanceKey]) -> None:
        """Fresh probes of the touched instances: the leader's memory now, the probers' (and so the
        API's) in the background."""
        wanted = list(dict.fromkeys(keys))
        c = self.pipeline.c

        async def run() -> None:
            try:
                await c.probe(wanted)
                if c.refresh is not None:
                    await c.refresh(wanted)
            except Exception as exc:  # noqa: BLE001 - best effort: the next poll shows it anyway
                log.info("refresh after operation failed: %s", exc)

        task = asyncio.get_running_loop().create_task(run())
        _REFRESHING.add(task)
        task.add_done_callback(_REFRESHING.discard)


# -- the control actions ------------------------------------------------------------------------------------
async def _stop(s: FencedSession) -> str:
    await stop_replication(s)
    return "replication stopped"


async def _start(s: FencedSession) -> str:
    await start_replication(s)
    return "replication started"


async def _restart(s: FencedSession) -> str:
    await stop_replication(s)
    await start_replication(s)
    return "replication restarted"


async def _reset(s: FencedSession) -> str:
    await reset_replica_all(s)
    return "replication configuration reset (RESET SLAVE ALL)"


async def _write(s: FencedSession, sql: str, params: tuple[Any, ...] | None = None) -> str:
    await s.write(sql, params)
    return sql.split(" %s")[0] + (f" {params[0]}" if params else "")


async def _read_only(s: FencedSession, on: bool) -> str:
    await set_read_only(s, on)
    return f"read_only={int(on)}"


async def _set_master_host(s: FencedSession, *, detach: bool) -> str:
    """detach: `//host` (an impossible host: the IO thread cannot connect; reversible); reattach: back."""
    return await set_master_host(s, detach=detach)


async def _skip_query(s: FencedSession) -> str:
    dialect = await s.dialect()
    status = await replication_status(s)
    if not dialect.is_mariadb and status is not None and status.using_gtid.lower() != "no":
        raise ReplicationCommandError(
            f"skip-query on {s.key}: MySQL GTID replication cannot skip by counter (inject an empty "
            "transaction for the failing GTID instead)"
        )
    await stop_replication(s, "SQL_THREAD")
    await s.write(f"SET GLOBAL {dialect.skip_counter_var} = 1")
    await start_replication(s, "SQL_THREAD")
    return "one event group skipped"


async def _delay(s: FencedSession, seconds: int) -> str:
    await stop_replication(s)
    await s.write((await s.dialect()).change_source("DELAY"), (seconds,), what=f"MASTER_DELAY = {seconds}")
    await start_replication(s)
    return f"MASTER_DELAY = {seconds}"


def uses_gtid(status: ReplicationStatus) -> bool:
    return status.using_gtid.lower() not in ("", "no")


def _semi(*, master: bool, on: bool) -> Action:
    return lambda s: set_semi_sync(s, master=master, on=on)


def _need(dest: InstanceKey | None, verb: RefactorVerb) -> InstanceKey:
    if dest is None:
        raise Refused(f"{verb.value} needs a destination instance", CommandStatus.BAD_REQUEST)
    return dest


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _reply(status: CommandStatus, message: str, **kw: Any) -> CommandReply:
    return CommandReply.model_validate({"status": status, "message": message, **kw})
