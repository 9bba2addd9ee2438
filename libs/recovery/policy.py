"""The operator's policy as gates: global switch, cluster filters, ignored hosts, downtime, blocks.

Each gate answers with a `Refusal` (reason + code) or None, like those in `gates.py`; they read the
control state (`control.py`) at the moment of the decision, so an operator's change applies to the
next detection. Forced (manual) recoveries pass all of them except RecoveryIgnoreHostnameFilters for
`recover` (orchestrator drops ignored hosts from the analysis itself, so `recover` finds nothing).

Anti-flapping (orchestrator's RecoveryPeriodBlockSeconds): a master recovery blocks further automated
master recoveries of its cluster — under its old name or alias, or the new master's cluster, whose
name changed with the failover — and an intermediate-master recovery blocks further automated
recoveries of that same instance, until the block expires or is acknowledged. A block never blocks the
incident that set it (a new leader finishing the old leader's incident is not flapping).

RecoverNonWriteableMaster (`writeable.py`), as orchestrator: off = a read-only master is reported, never
made writable (also refused to a forced `recover`); on = it is, whatever the cluster filters say (only
the key gates it). Its recovery is blocked like a master recovery (by a block of the cluster) and leaves
an instance block that refuses only the same recovery of the same master again. **Change:** orchestrator
lets it block every recovery of the cluster for RecoveryPeriodBlockSeconds, a dead master included.

The semi-sync repair (`semisync.py`: LockedSemiSyncMaster, MasterWithTooManySemiSyncReplicas) is gated
the same way by RecoverLockedSemiSyncMaster or EnforceExactSemiSyncReplicas (either key), and blocks
the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from libs.config import Settings
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.control import Block, ControlState
from libs.recovery.gates import (
    DEFAULT_GATES,
    INTERMEDIATE_MASTER_CODES,
    NON_WRITEABLE_MASTER_CODES,
    SEMI_SYNC_CODES,
    Gate,
    GateContext,
    Refusal,
    handled_code,
    leader,
    one_per_cluster,
)
from libs.topology.filters import matching_filter


class Policy(BaseModel):
    """What the configuration says about automated recoveries (orchestrator's keys)."""

    model_config = ConfigDict(frozen=True)

    master_filters: tuple[str, ...] = ()  # RecoverMasterClusterFilters
    intermediate_filters: tuple[str, ...] = ()  # RecoverIntermediateMasterClusterFilters
    ignore_hostname_filters: tuple[str, ...] = ()  # RecoveryIgnoreHostnameFilters
    block_seconds: float = 3600.0  # RecoveryPeriodBlockSeconds (0: no anti-flapping)
    recover_non_writeable_master: bool = False  # RecoverNonWriteableMaster
    recover_locked_semi_sync_master: bool = False  # RecoverLockedSemiSyncMaster (semisync.py)
    enforce_exact_semi_sync_replicas: bool = False  # EnforceExactSemiSyncReplicas (semisync.py)
    co_master_must_promote_other: bool = True  # CoMasterRecoveryMustPromoteOtherCoMaster (comaster.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            master_filters=tuple(settings.RecoverMasterClusterFilters),
            intermediate_filters=tuple(settings.RecoverIntermediateMasterClusterFilters),
            ignore_hostname_filters=tuple(settings.RecoveryIgnoreHostnameFilters),
            block_seconds=float(settings.RecoveryPeriodBlockSeconds),
            recover_non_writeable_master=settings.RecoverNonWriteableMaster,
            recover_locked_semi_sync_master=settings.RecoverLockedSemiSyncMaster,
            enforce_exact_semi_sync_replicas=settings.EnforceExactSemiSyncReplicas,
            co_master_must_promote_other=settings.CoMasterRecoveryMustPromoteOtherCoMaster,
        )

    def auto_master(self, cluster: str, alias: str) -> bool:
        return matching_filter(self.master_filters, cluster, alias) is not None

    def auto_intermediate(self, cluster: str, alias: str) -> bool:
        return matching_filter(self.intermediate_filters, cluster, alias) is not None


def block_for(record: RecoveryRecord, seconds: float, now: datetime) -> Block | None:
    """The block a closed recovery leaves, or None: graceful takeovers acknowledge themselves, and a
    recovery that found nothing to do (already fixed) or never registered (skipped) blocks nothing."""
    if seconds <= 0 or record.kind in (RecoveryKind.GRACEFUL_TAKEOVER, RecoveryKind.OPERATION):
        return None
    if record.outcome not in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.ABORTED):
        return None
    per_instance = (
        RecoveryKind.INTERMEDIATE_MASTER,
        RecoveryKind.NON_WRITEABLE_MASTER,
        RecoveryKind.SEMI_SYNC,
    )
    scope = "instance" if record.kind in per_instance else "cluster"
    return Block(
        scope=scope,
        cluster=record.cluster,
        alias=record.alias,
        instance=record.failed,
        successor=record.successor if scope == "cluster" and record.outcome is Outcome.SUCCEEDED else None,
        analysis=record.code,
        incident=record.incident,
        uid=record.uid,
        blocked_at=now,
        blocked_until=now + timedelta(seconds=seconds),
    )


# Repairs of a live master (not failovers): each leaves an instance block refusing only itself again.
_MASTER_REPAIRS = NON_WRITEABLE_MASTER_CODES | SEMI_SYNC_CODES


def blocking(blocks: Sequence[Block], ctx: GateContext) -> Block | None:
    """The block that applies to this detection, if any."""
    f = ctx.detection.finding
    im = f.code in INTERMEDIATE_MASTER_CODES
    writeable = f.code in _MASTER_REPAIRS
    for b in blocks:
        if b.incident == ctx.detection.incident or not b.active(ctx.now):
            continue
        if b.analysis in _MASTER_REPAIRS and (not writeable or b.analysis != f.code):
            continue  # repairing a live master (read_only, semi-sync) blocks only the same repair again
        same_instance = b.scope == "instance" and b.instance == f.instance
        if im or writeable:
            if same_instance:
                return b
            if im:
                continue
        if b.scope == "cluster" and (
            b.cluster == f.cluster or (b.alias and b.alias == f.alias) or b.successor == f.instance
        ):
            return b
    return None


def policy_gates(policy: Policy, control: ControlState) -> tuple[Gate, ...]:
    """The gates of an automated recovery: handled code, leader, one recovery per cluster (a detection of
    an incident already handled says so first), then orchestrator's order: global switch, cluster
    filters, ignored hosts, downtime, anti-flapping."""

    async def global_switch(ctx: GateContext) -> str | None:
        if ctx.forced:
            return None
        state = await control.global_recoveries()
        if state is None or state.enabled:
            return None
        by = f" by {state.by}" if state.by else ""
        return Refusal(
            "disabled",
            f"automated recoveries are disabled globally{by} since {state.changed_at.isoformat()} "
            "(enable-global-recoveries)",
        )

    async def cluster_filter(ctx: GateContext) -> str | None:
        f = ctx.detection.finding
        if f.code in NON_WRITEABLE_MASTER_CODES:  # orchestrator: the key alone, forced or not
            if policy.recover_non_writeable_master:
                return None
            why = f"RecoverNonWriteableMaster is off: read-only master {f.instance} is not made writable"
            return Refusal("filtered", why)
        if f.code in SEMI_SYNC_CODES:  # orchestrator: the keys alone, forced or not
            if policy.recover_locked_semi_sync_master or policy.enforce_exact_semi_sync_replicas:
                return None
            why = (
                f"RecoverLockedSemiSyncMaster and EnforceExactSemiSyncReplicas are off: no action taken to "
                f"recover semi-sync master {f.instance} ({f.code.value})"
            )
            return Refusal("filtered", why)
        if ctx.forced:
            return None
        im = f.code in INTERMEDIATE_MASTER_CODES
        filters = policy.intermediate_filters if im else policy.master_filters
        if matching_filter(filters, f.cluster, f.alias) is not None:
            return None
        key = "RecoverIntermediateMasterClusterFilters" if im else "RecoverMasterClusterFilters"
        return Refusal("filtered", f"cluster {f.cluster} (alias {f.alias}) is not in {key}")

    async def ignored_host(ctx: GateContext) -> str | None:
        if ctx.record.command:  # force-master-failover, graceful takeovers: not analysis-driven
            return None
        host = ctx.detection.finding.instance.host
        for pattern in policy.ignore_hostname_filters:
            if re.search(pattern, host):
                return Refusal("ignored", f"{host} matches RecoveryIgnoreHostnameFilters {pattern!r}")
        return None

    async def downtimed(ctx: GateContext) -> str | None:
        if ctx.forced:
            return None
        f = ctx.detection.finding
        replicas = list(f.replicas) if f.code in INTERMEDIATE_MASTER_CODES else []
        found = await control.downtimes([f.instance, *replicas], ctx.now)
        mine = found.get(f.instance)
        if mine is not None:
            return Refusal(
                "downtimed",
                f"{f.instance} is downtimed until {mine.ends_at.isoformat()} by {mine.owner or 'unknown'}: "
                f"{mine.reason}",
            )
        if replicas and all(r in found for r in replicas):
            return Refusal("downtimed", f"all replicas of {f.instance} are downtimed")
        return None

    async def blocked(ctx: GateContext) -> str | None:
        if ctx.forced or policy.block_seconds <= 0:
            return None
        block = blocking(await control.blocks(ctx.now), ctx)
        if block is None:
            return None
        return Refusal(
            "blocked",
            f"blocked by recovery {block.uid} ({block.analysis} on {block.instance} of {block.alias}) "
            f"until {block.blocked_until.isoformat()} (RecoveryPeriodBlockSeconds); acknowledge it "
            "(ack-recoveries) to allow a new automated recovery",
            by=block.uid,
        )

    return (
        handled_code,
        leader,
        one_per_cluster,
        global_switch,
        cluster_filter,
        ignored_host,
        downtimed,
        blocked,
    )


__all__ = ["DEFAULT_GATES", "Policy", "block_for", "blocking", "policy_gates"]
