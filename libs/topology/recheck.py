"""The re-check: after a detection is admitted and before anything is changed, a fresh look at the
failed instance and its neighbours decides whether the recovery goes on. Pure (the pipeline probes and
analyses; these functions say what to probe and what the fresh analysis means).

orchestrator's checkAndRecover* re-read the analysis before acting too (VTOrc: "already fixed?" on fresh
data): a dead master that answers again, or whose replicas hear from it, is not failed over.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.analysis import Finding
from libs.topology.codes import Analysis
from libs.topology.view import ClusterView, InstanceState


def recheck_keys(
    known: Mapping[InstanceKey, InstanceState],
    failed: InstanceKey,
    finding: Finding | None,
    *,
    siblings: bool,
) -> list[InstanceKey]:
    """What the re-check probes: the failed instance and its replicas (those the finding named and
    those known to replicate from it); with `siblings` (an intermediate master, a read-only master) also
    its master and that master's replicas (where its replicas may go). Sorted."""
    keys = {failed}
    if finding is not None:
        keys.update(finding.replicas)
    keys.update(k for k, s in known.items() if s.master_key == failed)
    if siblings:
        state = known.get(failed)
        master = (finding.master if finding else None) or (state.master_key if state else None)
        if master is not None:
            keys.add(master)
            keys.update(k for k, s in known.items() if s.master_key == master)
    return sorted(keys)


class Recheck(StrEnum):
    PROCEED = "proceed"  # still broken (or forced): carry on with `RecheckVerdict.finding`
    ALREADY_FIXED = "already-fixed"  # the fresh analysis no longer shows a problem this recovery handles


@dataclass(frozen=True)
class RecheckVerdict:
    outcome: Recheck
    text: str  # the step's detail (proceed) or the record's reason (already fixed)
    # the fresh finding the recovery carries on with; None: keep the detection's (a forced failover, or
    # already fixed). Its code may differ from the detection's (DeadMaster → DeadMasterAndSomeReplicas)
    finding: Finding | None = None


def recheck_verdict(
    findings: Iterable[Finding],
    failed: InstanceKey,
    codes: Collection[Analysis],
    *,
    forced: bool,
    force_failover: bool = False,
) -> RecheckVerdict:
    """What the fresh analysis (`findings` of the failed instance's cluster) says about the recovery of
    `failed`. `force_failover` (force-master-failover): proceed whatever it finds. Otherwise proceed on
    the first finding of `failed` with one of `codes` that triggers a recovery — or, `forced` (a manual
    recovery), that is merely actionable (downtimed, skippable); none: already fixed."""
    mine = [f for f in findings if f.instance == failed]
    says = ", ".join(f.code.value for f in mine) or "no problem"
    if force_failover:
        return RecheckVerdict(Recheck.PROCEED, f"forced failover (fresh analysis: {says})")
    still = next(
        (f for f in mine if f.code in codes and (f.actionable if forced else f.triggers_recovery)), None
    )
    if still is None:
        return RecheckVerdict(
            Recheck.ALREADY_FIXED, f"already fixed: fresh analysis of {failed} finds {says}"
        )
    return RecheckVerdict(Recheck.PROCEED, f"still {still.code.value}: {still.reason}", still)


def unreachable_replicas(view: ClusterView, failed: InstanceKey) -> dict[InstanceKey, InstanceSnapshot]:
    """The failed master's replicas unreachable in the plan's view, with their latest probe: not
    drained, not probed again while the failover runs (each would cost a connect timeout)."""
    return {s.key: s.last_probe for s in view.replicas_of(failed) if not s.last_probe.reachable}
