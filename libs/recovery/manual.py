"""Operator commands the recovery leader carries out: `CommandRequest` in, `CommandReply` out.

- `recover` / `recover-lite`: a fresh probe and analysis of the instance's cluster; refused unless the
  instance has a problem Baton recovers (dead master, dead intermediate master); then a forced recovery
  (bypasses the global switch, filters, downtime and blocks; never the one-recovery-per-cluster rule),
  optionally promoting the designated candidate; recover-lite runs no hooks.
- `force-master-failover`: the cluster's master is failed over as if it were dead, even if healthy: it is
  set read_only first if it answers, then the usual failover (command hint `force-master-failover`).
- `graceful-master-takeover[-auto]`: planned switch (`takeover.py`, steps in `steps.takeover_steps`);
  the reply carries the write outage; the recovery acknowledges itself and leaves no block.
- `ack-recoveries`: clears anti-flapping blocks and marks recoveries acknowledged (by cluster — alias
  or any of its instances —, instance, uid, or all; a comment is required), publishing
  `recovery.acknowledged` for each; then the deferred detections are tried again. One naming a
  recovery (uid) or a server (instance) also ends the fence watch on that failover's old master
  (`old_master.py`): it is no longer kept read-only.
- `blocked-recoveries`: the automated recoveries refused by a block still in force (orchestrator's
  blocked recoveries): each refused failed instance and code with the blocking recovery, its first and
  latest refusal and how many, from the leader's deferred detections (retried every ~2 s, so the latest
  refusal moves); an acknowledgement lifts the block and the retry that follows empties the list.
The reply is sent once the recovery is over (the API waits up to `RecoveryVerb.reply_timeout_s`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from libs.models import InstanceKey
from libs.models.operator import AckScope, CommandReply, CommandRequest, CommandStatus, RecoveryAcknowledged
from libs.recovery.audit import (
    FORCE_MASTER_FAILOVER,
    FORCE_MASTER_TAKEOVER,
    GRACEFUL,
    Outcome,
    RecoveryKind,
    RecoveryRecord,
    new_record,
)
from libs.recovery.control import Block, ControlState, Deferred, blocked_attempts
from libs.recovery.fence import Fence
from libs.recovery.gates import HANDLED_CODES, MASTER_FAILOVER_CODES
from libs.recovery.keeper import MasterKeeper
from libs.recovery.old_master import OldMasterFencer
from libs.recovery.pipeline import RecoveryPipeline
from libs.recovery.recovery_events import AckPublisher
from libs.topology.analysis import Finding
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState, incident_id
from libs.topology.fresh import fresh_views, view_holding
from libs.topology.takeover import takeover_plan
from libs.topology.view import ClusterView

Runner = Callable[[RecoveryRecord], Awaitable[RecoveryRecord]]
Retry = Callable[[], Awaitable[None]]


def _reply(status: CommandStatus, message: str, **kw: object) -> CommandReply:
    return CommandReply.model_validate({"status": status, "message": message, **kw})


def record_reply(record: RecoveryRecord) -> CommandReply:
    """The reply for a recovery that ran (or was refused by a gate)."""
    status = {
        Outcome.SUCCEEDED: CommandStatus.OK,
        Outcome.ALREADY_FIXED: CommandStatus.REFUSED,
        Outcome.SKIPPED: CommandStatus.BUSY if record.skip_code == "busy" else CommandStatus.REFUSED,
    }.get(record.outcome, CommandStatus.FAILED)
    return CommandReply(
        status=status,
        message=record.reason,
        recovery=record.model_dump(mode="json"),
        successor=record.successor if record.outcome is Outcome.SUCCEEDED else None,
        write_outage_ms=record.write_outage_ms,
    )


@dataclass
class Operations:
    pipeline: RecoveryPipeline
    fence: Fence
    control: ControlState
    acks: AckPublisher
    run: Runner  # drives an admitted record to its end (the service tracks the task)
    retry: Retry | None = None  # re-admit detections deferred by a block, the switch or downtime
    # the leader's deferred detections as they are now (their latest refusal moves in memory only);
    # None: as last written to the control state
    deferred: Callable[[], Iterable[Deferred]] | None = None
    masters: MasterKeeper | None = None  # keeps baton_masters (submit-masters-to-kv-stores)
    fences: OldMasterFencer | None = None  # the old-master fencer: ack-recoveries naming one ends its watch

    # -- views ---------------------------------------------------------------------------------------
    def _views(self) -> list[ClusterView]:
        return fresh_views(self.pipeline.c.known())

    def _view_of(self, key: InstanceKey) -> ClusterView | None:
        return view_holding(self._views(), key)

    def _cluster(self, req: CommandRequest) -> ClusterView | None:
        views = self._views()
        for view in views:
            if req.cluster and view.name == req.cluster:
                return view
        for view in views:
            if req.alias and view.alias == req.alias:
                return view
        if req.cluster:
            try:
                return self._view_of(InstanceKey.parse(req.cluster))
            except ValueError:
                return None
        return None

    async def _fresh_cluster(self, req: CommandRequest) -> ClusterView | None:
        """The requested cluster, freshly probed. The API names a cluster by its master's `host:port`;
        Baton's memory may lag a switch it just made (a takeover, then a force failover at once), so
        the fresh view is the one holding that instance now, whatever its master is."""
        known = self._cluster(req)
        if known is None:
            return None
        anchor = known.masters[0].key if known.masters else known.instances[0].key
        if req.cluster:
            try:
                anchor = (
                    InstanceKey.parse(req.cluster) if known.get(InstanceKey.parse(req.cluster)) else anchor
                )
            except ValueError:
                pass
        return await self._fresh([s.key for s in known.instances], anchor) or known

    async def _fresh(self, keys: Sequence[InstanceKey], anchor: InstanceKey) -> ClusterView | None:
        """Probe `keys` now; the cluster view containing `anchor` over known + fresh states."""
        return view_holding(await self._fresh_views(keys), anchor)

    async def _fresh_views(self, keys: Sequence[InstanceKey]) -> list[ClusterView]:
        """Probe `keys` now; every cluster view over known + fresh states."""
        fresh = await self.pipeline.c.probe(sorted(set(keys)))
        return fresh_views(self.pipeline.c.known(), fresh)

    def _record(
        self, finding: Finding, req: CommandRequest, command: str
    ) -> tuple[Detection, RecoveryRecord]:
        c = self.pipeline.c
        now = c.clock()
        detection = Detection(
            incident=incident_id(finding, now) if not command else f"{command}:{uuid.uuid4().hex}",
            state=DetectionState.ACTIVE,
            finding=finding,
            first_evidence_at=now,
            evidence_at=now,
            detected_at=now,
            node=self.pipeline.node,
        )
        record = new_record(
            detection, epoch=self.fence.epoch, node=self.pipeline.node, now=now, command=command
        )
        record.forced, record.requested_by = True, req.requested_by
        record.skip_hooks, record.designated = req.skip_hooks, req.destination
        return detection, record

    async def _start(self, detection: Detection, record: RecoveryRecord) -> CommandReply:
        admitted = await self.pipeline.admit(detection, self.fence, record=record)
        if not admitted.active:
            return record_reply(admitted)
        try:
            done = await self.run(admitted)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return _reply(
                CommandStatus.FAILED,
                f"recovery {admitted.uid}: the leadership was lost mid-way; the next leader resumes it",
            )
        except Exception as exc:  # noqa: BLE001 - e.g. LeadershipLost: said in the reply
            return _reply(CommandStatus.FAILED, f"recovery {admitted.uid}: {type(exc).__name__}: {exc}")
        return record_reply(done)

    # -- recover ---------------------------------------------------------------------------------------
    async def recover(self, req: CommandRequest) -> CommandReply:
        key = req.instance
        if key is None:
            return _reply(CommandStatus.BAD_REQUEST, "recover needs an instance")
        known = self._view_of(key)
        if known is None:
            return _reply(CommandStatus.NOT_FOUND, f"instance {key} is not known to the recovery")
        view = await self._fresh([s.key for s in known.instances], key)
        if view is None:
            return _reply(CommandStatus.NOT_FOUND, f"instance {key} is in no cluster")
        findings = [f for f in self.pipeline.c.analyze(view, self.pipeline.c.clock()) if f.instance == key]
        mine = next((f for f in findings if f.code in HANDLED_CODES and f.actionable), None)
        if mine is None:
            says = ", ".join(f.code.value for f in findings) or "no problem"
            return _reply(
                CommandStatus.REFUSED,
                f"{key} is not broken in a way Baton recovers: fresh analysis finds {says}",
            )
        return await self._start(*self._record(mine, req, ""))

    # -- force-master-failover ---------------------------------------------------------------------------
    async def force_master_failover(self, req: CommandRequest, *, takeover: bool = False) -> CommandReply:
        """force-master-failover; with `takeover` (force-master-takeover) the destination, which must be a
        direct replica of the master (orchestrator's words otherwise), is the one promoted."""
        view = await self._fresh_cluster(req)
        if view is None:
            return _reply(CommandStatus.NOT_FOUND, f"cluster {req.cluster or req.alias} is not known")
        if len(view.masters) != 1:
            return _reply(CommandStatus.REFUSED, f"Cannot deduce cluster master for {view.name}")
        master = view.masters[0].key
        if takeover:
            if req.destination is None:
                return _reply(CommandStatus.BAD_REQUEST, "force-master-takeover: destination not indicated")
            dest = view.get(req.destination)
            upstream = dest.info.master_key if dest is not None else None
            if upstream != master:
                where = f"is {upstream}" if dest is not None else f"not known in cluster {view.name}"
                return _reply(
                    CommandStatus.REFUSED,
                    f"You may only promote a direct child of the master {master}. "
                    f"The master of {req.destination} {where}.",
                )
        findings = self.pipeline.c.analyze(view, self.pipeline.c.clock())
        finding = next(
            (f for f in findings if f.instance == master and f.code in MASTER_FAILOVER_CODES), None
        ) or _master_finding(view, master, f"force-master-failover requested by {req.requested_by}")
        command = FORCE_MASTER_TAKEOVER if takeover else FORCE_MASTER_FAILOVER
        return await self._start(*self._record(finding, req, command))

    # -- graceful-master-takeover[-auto] ---------------------------------------------------------------
    async def graceful_takeover(self, req: CommandRequest, *, auto: bool) -> CommandReply:
        view = await self._fresh_cluster(req)
        if view is None:
            return _reply(CommandStatus.NOT_FOUND, f"cluster {req.cluster or req.alias} is not known")
        c = self.pipeline.c
        plan = takeover_plan(
            view,
            req.destination,
            auto=auto,
            rules=await c.rules(),
            now=c.clock(),
            max_lag_s=c.options.takeover_wait_s,
        )
        if not plan.ok or plan.successor is None:
            return _reply(CommandStatus.REFUSED, plan.reason)  # orchestrator's words
        command = f"{GRACEFUL}-auto" if auto else GRACEFUL
        finding = _master_finding(view, plan.failed_master, f"{command} requested by {req.requested_by}")
        detection, record = self._record(finding, req, command)
        record.designated = plan.successor
        return await self._start(detection, record)

    # -- topology refactoring and replication control (libs/recovery/refactoring.py) --------------------
    async def refactor(self, req: CommandRequest) -> CommandReply:
        from libs.recovery.refactoring import Refactoring

        runner = Refactoring.of(self.pipeline, self.fence)
        if runner is None:
            return _reply(CommandStatus.FAILED, f"{req.verb}: this leader does not act on MySQL")
        return await runner.run(req)

    # -- acknowledgements and blocks -------------------------------------------------------------------
    def _members(self, req: CommandRequest) -> set[InstanceKey]:
        view = self._cluster(req)
        return {s.key for s in view.instances} if view is not None else set()

    def _block_in_scope(self, block: Block, req: CommandRequest, members: set[InstanceKey]) -> bool:
        scope = req.scope
        if scope is AckScope.ALL:
            return True
        if scope is AckScope.UID:
            return block.uid == req.uid
        if scope is AckScope.INSTANCE:
            return req.instance is not None and req.instance in (block.instance, block.successor)
        return _of_cluster(req, members, block.cluster, block.alias, block.instance) or (
            block.successor is not None and block.successor in members
        )

    def _record_in_scope(
        self, record: RecoveryRecord, req: CommandRequest, members: set[InstanceKey]
    ) -> bool:
        if record.active or record.acknowledged or record.outcome is Outcome.SKIPPED:
            return False
        if record.kind is RecoveryKind.OPERATION:  # a refactoring's lock record: not a recovery
            return False
        scope = req.scope
        if scope is AckScope.ALL:
            return True
        if scope is AckScope.UID:
            return record.uid == req.uid
        if scope is AckScope.INSTANCE:
            return record.failed == req.instance
        return _of_cluster(req, members, record.cluster, record.alias, record.failed)

    async def ack(self, req: CommandRequest) -> CommandReply:
        comment = req.comment.strip()
        if not comment:
            return _reply(CommandStatus.BAD_REQUEST, "acknowledging recoveries needs a comment (why)")
        if req.scope is None:
            return _reply(
                CommandStatus.BAD_REQUEST, "ack-recoveries needs a scope: cluster, instance, uid or all"
            )
        c = self.pipeline.c
        now = c.clock()
        members = self._members(req) if req.scope is AckScope.CLUSTER else set()
        targets: dict[str, tuple[str, str, InstanceKey]] = {}  # uid -> (cluster, alias, failed)
        for block in await self.control.blocks(now):
            if self._block_in_scope(block, req, members):
                self.fence.check()
                await self.control.delete_block(block)
                targets[block.uid] = (block.cluster, block.alias, block.instance)
        for record in await c.store.latest_records():
            if self._record_in_scope(record, req, members):
                targets.setdefault(record.uid, (record.cluster, record.alias, record.failed))
        by = req.requested_by
        for uid, (cluster, alias, failed) in targets.items():
            ack = RecoveryAcknowledged(uid=uid, by=by, comment=comment, at=now)
            await c.store.annotate(alias, uid, lambda r: r.acknowledge(by, comment, now))
            await self.acks(cluster, str(failed), ack, self.fence.epoch)
        unfenced: list[InstanceKey] = []
        if self.fences is not None and req.scope in (AckScope.UID, AckScope.INSTANCE):
            unfenced = await self.fences.end(  # only an acknowledgement naming it, never a bulk one
                self.fence,
                by=by,
                reason=f"ack-recoveries: {comment}",
                uid=req.uid if req.scope is AckScope.UID else None,
                instance=req.instance if req.scope is AckScope.INSTANCE else None,
            )
        if targets and self.retry is not None:
            await self.retry()
        uids = sorted(targets)
        message = f"Acknowledged {len(uids)} recoveries"
        if unfenced:
            message += "; no longer kept read-only: " + ", ".join(str(k) for k in unfenced)
        return _reply(CommandStatus.OK, message, acknowledged=uids)

    async def blocked(self, req: CommandRequest) -> CommandReply:
        blocks = await self.control.blocks(self.pipeline.c.clock())
        deferred = self.deferred() if self.deferred is not None else await self.control.deferred()
        attempts = blocked_attempts(deferred, blocks)
        if req.cluster or req.alias:
            members = self._members(req)
            attempts = [a for a in attempts if _of_cluster(req, members, a.cluster, a.alias, a.instance)]
        return _reply(CommandStatus.OK, f"{len(attempts)} blocked", blocked=attempts)

    # -- submit-masters-to-kv-stores -------------------------------------------------------------------
    async def submit_masters(self, req: CommandRequest) -> CommandReply:
        """baton_masters holds the live master of every cluster (or of the hinted one): created when
        absent, replaced when it names a server that is no longer a live writable master; then every
        kvpublisher reconciles. Details: orchestrator's `[{"Key", "Value"}]` of the submitted masters."""
        keeper = self.masters
        if keeper is None:
            return _reply(CommandStatus.FAILED, f"{req.verb}: this leader does not keep baton_masters")
        hint = req.cluster or req.alias
        target: ClusterView | None = None
        if hint:
            target = self._cluster(req) or self._cluster(CommandRequest(verb=req.verb, alias=hint))
            if target is None:
                unknown = f"Unable to determine cluster name. clusterHint={hint}"  # orchestrator's words
                return _reply(CommandStatus.NOT_FOUND, unknown)
        scope = [target] if target is not None else self._views()
        views = await self._fresh_views([s.key for v in scope for s in v.instances])
        name = None
        if target is not None:
            anchor = target.masters[0].key if target.masters else target.instances[0].key
            name = next((v.name for v in views if v.get(anchor) is not None), target.name)
        done = await keeper.submit(views, self.fence, cluster=name, by=req.requested_by)
        pairs = keeper.pairs(done)
        submitted = f"Submitted {len(done.submitted)} masters"
        if done.failed:
            why = "; ".join(f"{d.view.name}: {error}" for d, error in done.failed)
            return _reply(CommandStatus.FAILED, f"{submitted}; failed: {why}", details=pairs)
        if name is not None and not done.submitted:
            reason = done.skipped[0].reason if done.skipped else f"cluster {name} has no master"
            return _reply(CommandStatus.REFUSED, f"{hint}: nothing submitted: {reason}")
        return _reply(CommandStatus.OK, submitted, details=pairs)


def _of_cluster(
    req: CommandRequest, members: set[InstanceKey], cluster: str, alias: str, instance: InstanceKey | None
) -> bool:
    """Whether something of `cluster`/`alias` about `instance` belongs to the requested cluster: by name,
    alias, or the instance being one of its `members` now."""
    return cluster == req.cluster or bool(req.alias and alias == req.alias) or instance in members


def _master_finding(view: ClusterView, master: InstanceKey, reason: str) -> Finding:
    """The analysis a forced or planned master switch is recorded under (orchestrator forces DeadMaster
    with a command hint)."""
    state = view.get(master)
    replicas = tuple(sorted(s.key for s in view.replicas_of(master)))
    return Finding(
        code=Analysis.DEAD_MASTER,
        cluster=view.name,
        alias=view.alias,
        instance=master,
        master=None,
        is_master=True,
        reachable=bool(state and state.last_probe.reachable),
        priority=1,
        actionable=True,
        replica_count=len(replicas),
        valid_replicas=len(replicas),
        replicas=replicas,
        reason=reason,
    )
