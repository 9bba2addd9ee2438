"""The execution side of a dead master's failover, with fake collaborators: drain → rank → promotion,
the fallback to the next candidate before the point of no return, replicas lost while executing, and
resumption of all of it by a new leader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from libs.errors import LeadershipLost
from libs.models import InstanceKey, InstanceSnapshot, PromotionRule
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.recovery.executor import StepResult
from libs.recovery.fence import Fence, StaticFence
from libs.recovery.record_store import MemoryRecordStore
from libs.recovery.steps import StepSpec
from libs.topology.failover import moved_back
from libs.topology.plan import DrainState
from libs.topology.view import InstanceState
from tests.unit.candidate.builders import MASTER, cluster, k, r
from tests.unit.recovery.fakes import FakeExecutor, detection, rig

LEVEL = cluster(r(1), r(2), r(3, pos="0-1-80"))  # k1 and k2 hold the same: k1 wins by address


async def test_a_successor_failing_before_promotion_is_replaced_by_the_next_candidate() -> None:
    t = rig(LEVEL, executor=FakeExecutor(fail={f"wait-applied:{k(1)}": "SQL thread died"}))
    rec = await t.pipeline.handle(detection(LEVEL), StaticFence(1))
    assert rec.outcome is Outcome.SUCCEEDED, rec.reason
    assert rec.successor == k(2) and rec.plan is not None
    assert [(x.key, x.reason) for x in rec.plan.tried] == [(k(1), "SQL thread died")]
    assert t.executor.ran == [
        "stop-io",
        "drain",
        f"wait-applied:{k(1)}",
        f"wait-applied:{k(2)}",
        f"repoint:{k(2)}",
        f"promote:{k(2)}",
    ]
    fallback = rec.step(f"fallback:{k(1)}")
    assert fallback is not None and fallback.outcome is StepOutcome.DONE
    assert f"{k(1)} failed in wait-applied:{k(1)}: SQL thread died" in fallback.detail
    assert k(1) in rec.plan.replicas_to_repoint  # it failed as a candidate, it still follows the new one
    assert rec.plan.drain is DrainState.DONE
    assert f"after {k(1)} failed" in rec.reason
    assert t.events.phases.count("planned") == 3  # plan, rank, fallback
    assert [m.master for m in t.masters.written] == [k(2)]


async def test_no_fallback_once_replicas_follow_the_candidate() -> None:
    """One step: the replicas are repointed under the successor before its promotion; a promotion that
    fails then leaves no way back (the point of no return)."""
    t = rig(LEVEL, executor=FakeExecutor(fail={"promote:": "read_only refused"}))
    rec = await t.pipeline.handle(detection(LEVEL), StaticFence(1))
    assert rec.outcome is Outcome.FAILED and f"step promote:{k(1)} failed" in rec.reason
    assert not any(s.name.startswith("fallback:") for s in rec.steps)
    assert t.masters.written == []


async def test_no_candidate_left_fails_with_both_reasons() -> None:
    view = cluster(r(1), r(2, rule=PromotionRule.MUST_NOT), r(3, rule=PromotionRule.MUST_NOT))
    t = rig(view, executor=FakeExecutor(fail={f"wait-applied:{k(1)}": "gone"}))
    rec = await t.pipeline.handle(detection(view), StaticFence(1))
    assert rec.outcome is Outcome.FAILED
    assert f"{k(1)} failed in wait-applied:{k(1)}: gone; no other candidate" in rec.reason, rec.reason
    assert rec.step(f"fallback:{k(1)}").outcome is StepOutcome.FAILED  # type: ignore[union-attr]
    assert t.masters.written == []


async def test_an_intermediate_failing_is_replaced_too() -> None:
    """Two steps through must_not k3, which holds the most; it fails while applying its relay log: the
    next plan does without it (k3 lost: it holds transactions the new master lacks)."""
    view = cluster(r(1, pos="0-1-90"), r(2, pos="0-1-80"), r(3, pos="0-1-100", rule=PromotionRule.MUST_NOT))
    t = rig(view, executor=FakeExecutor(fail={f"wait-applied:{k(3)}": "relay log corrupt"}))
    rec = await t.pipeline.handle(detection(view), StaticFence(1))
    assert rec.outcome is Outcome.SUCCEEDED, rec.reason
    assert rec.intermediate is None and rec.successor == k(1)
    assert rec.plan is not None and [x.key for x in rec.plan.tried] == [k(3)]
    assert rec.lost_replicas == [k(3)]


@dataclass
class LosingExecutor(FakeExecutor):
    """Repoints fail for `cannot_follow` (not required: the replica is lost, the recovery goes on)."""

    cannot_follow: dict[InstanceKey, str] = field(default_factory=dict)

    async def run(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        result = await super().run(spec, record, fence)
        lost = {x: why for x, why in self.cannot_follow.items() if x in spec.targets}
        if spec.name.startswith("repoint:") and lost:
            result.errors = {str(x): why for x, why in lost.items()}
            result.lost = {x: f"could not be repointed under {spec.source}: {why}" for x, why in lost.items()}
        return result


async def test_replicas_lost_while_executing_are_reported_downtimed_and_detached() -> None:
    ex = LosingExecutor(cannot_follow={k(3): "IO thread stopped [1236] binlog purged"})
    t = rig(LEVEL, executor=ex)
    t.pipeline.c.options = t.pipeline.c.options.model_copy(update={"lost_downtime_minutes": 10})
    rec = await t.pipeline.handle(detection(LEVEL), StaticFence(1))
    assert rec.outcome is Outcome.SUCCEEDED
    assert rec.lost_replicas == [k(3)]
    assert rec.to_orchestrator()["LostReplicas"] == [{"Hostname": k(3).host, "Port": k(3).port}]
    assert f"lost while executing it: {k(3)}: could not be repointed under {k(1)}" in rec.reason
    assert ex.ran[-2:] == ["downtime-lost", "detach-lost"]
    steps = {s.name: s for s in rec.steps}
    assert "downtime-lost" in steps and "detach-lost" in steps


async def test_a_new_leader_resumes_after_a_fallback_without_repeating_it() -> None:
    store = MemoryRecordStore()
    ex = FakeExecutor(fail={f"wait-applied:{k(1)}": "SQL thread died"}, lose_lead_at=f"promote:{k(2)}")
    old = rig(LEVEL, store=store, executor=ex, node="old")
    with pytest.raises(LeadershipLost):
        await old.pipeline.handle(detection(LEVEL), StaticFence(3))
    new = rig(LEVEL, store=store, node="new")
    (rec,) = await new.pipeline.resume_open(StaticFence(8))
    assert rec.outcome is Outcome.SUCCEEDED and rec.successor == k(2)
    assert new.executor.ran == [f"promote:{k(2)}"]  # drain, rank, fallback and repoint were done
    assert [s.name for s in rec.steps].count(f"fallback:{k(1)}") == 1
    done = [s.name for s in rec.steps if s.outcome is StepOutcome.DONE]
    assert len(done) == len(set(done))


def under(state: InstanceState, source: InstanceKey) -> InstanceState:
    info = state.info
    assert info.replication is not None
    moved = info.model_copy(update={"replication": info.replication.model_copy(update={"master": source})})
    return state.model_copy(update={"last_probe": moved, "last_seen": moved})


def test_moved_back_shows_replicas_under_a_surviving_intermediate_as_before() -> None:
    view = cluster(under(r(1), k(3)), under(r(2), k(9)), r(3))
    back = moved_back(view, {k(1): k(3), k(2): k(3)}, MASTER)
    assert back.get(k(1)).master_key == MASTER  # type: ignore[union-attr]
    assert back.get(k(2)).master_key == k(9)  # type: ignore[union-attr]  # not under the source any more
    assert back.get(k(3)) == view.get(k(3))


@dataclass
class TargetsExecutor(FakeExecutor):
    targets: dict[str, tuple[InstanceKey, ...]] = field(default_factory=dict)

    async def run(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        self.targets[spec.name] = spec.targets
        return await super().run(spec, record, fence)


async def test_replicas_found_unreachable_are_neither_drained_nor_probed_again() -> None:
    """Each would cost a connect timeout: the drain skips them, the ranking keeps their last probe."""
    view = cluster(r(1), r(2), r(3, reachable=False))
    ex = TargetsExecutor()
    t = rig(view, executor=ex)
    probed: list[list[InstanceKey]] = []
    serve = t.world.probe

    async def probe(keys: Sequence[InstanceKey]) -> Mapping[InstanceKey, InstanceSnapshot]:
        probed.append(sorted(keys))
        return await serve(keys)

    t.pipeline.c.probe = probe
    rec = await t.pipeline.handle(detection(view), StaticFence(1))
    assert rec.outcome is Outcome.SUCCEEDED and rec.successor == k(1)
    assert ex.targets["stop-io"] == ex.targets["drain"] == (k(1), k(2))
    assert probed[-1] == [k(1), k(2)]  # the ranking: neither the failed master nor k3
    assert k(3) in rec.lost_replicas
