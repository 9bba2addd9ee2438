"""The pipeline's decisions with fake collaborators: outcomes, hooks, events, resumption."""

from __future__ import annotations

import pytest

from libs.errors import LeadershipLost
from libs.hooks import HookKind
from libs.models import PromotionRule
from libs.recovery.audit import Outcome, StepOutcome
from libs.recovery.fence import StaticFence
from libs.recovery.record_store import MemoryRecordStore
from libs.topology.codes import Analysis
from libs.topology.view import InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r
from tests.unit.recovery.fakes import FakeExecutor, FakeHooks, detection, rig

VIEW = cluster(r(1), r(2, pos="0-1-90"), r(3, pos="0-1-80"))


async def test_success_runs_every_step_once_and_publishes_the_master() -> None:
    t = rig(VIEW)
    rec = await t.pipeline.handle(detection(VIEW), StaticFence(4))
    assert rec.outcome is Outcome.SUCCEEDED and rec.successor == k(1)
    assert t.executor.ran == [
        "stop-io",
        "drain",
        f"wait-applied:{k(1)}",
        f"repoint:{k(1)}",
        f"promote:{k(1)}",
    ]
    assert [s.name for s in rec.steps][:5] == ["recheck", "plan", "pre-failover-hooks", "stop-io", "drain"]
    assert rec.step("rank") is not None and rec.plan is not None and rec.plan.drain == "done"
    assert [m.master for m in t.masters.written] == [k(1)] and t.masters.written[0].epoch == 4
    assert t.hooks.ran == [HookKind.PRE_FAILOVER, HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER]
    assert t.events.phases[0] == "registered" and "planned" in t.events.phases
    assert t.events.phases[-1] == "completed"
    assert all(e.epoch == 4 for _, e in t.events.events)
    stored = await t.store.current(rec.alias)
    assert stored is not None and stored.outcome is Outcome.SUCCEEDED
    assert rec.promoted_at is not None and rec.published_at is not None


async def test_already_fixed_when_the_fresh_look_finds_the_master_alive() -> None:
    t = rig(VIEW)
    det = detection(VIEW)
    seen = master().last_seen
    assert seen is not None
    alive = seen.model_copy(update={"probed_at": NOW})
    back = InstanceState(key=MASTER, last_probe=alive, last_seen=alive)
    t.world.view = VIEW.model_copy(update={"instances": (back, *VIEW.instances[1:])})
    rec = await t.pipeline.handle(det, StaticFence(1))
    assert rec.outcome is Outcome.ALREADY_FIXED and rec.reason.startswith("already fixed")
    assert t.executor.ran == [] and t.hooks.ran == [] and t.masters.written == []
    assert t.events.phases[-1] == "completed"


async def test_no_candidate_aborts_and_runs_post_unsuccessful_hooks() -> None:
    view = cluster(r(1, rule=PromotionRule.MUST_NOT), r(2, rule=PromotionRule.MUST_NOT))
    t = rig(view)
    rec = await t.pipeline.handle(detection(view), StaticFence(1))
    assert rec.outcome is Outcome.ABORTED and "must_not" in rec.reason
    assert t.hooks.ran == [HookKind.POST_UNSUCCESSFUL_FAILOVER]
    assert t.executor.ran == [] and t.events.phases[-1] == "failed"
    assert {x.key for x in rec.passed_over} == {k(1), k(2)}


async def test_failing_pre_hook_aborts_before_any_mysql_change() -> None:
    t = rig(VIEW, hooks=FakeHooks(failing={HookKind.PRE_FAILOVER}))
    rec = await t.pipeline.handle(detection(VIEW), StaticFence(1))
    assert (
        rec.outcome is Outcome.ABORTED and "PreFailoverProcesses hook #1 failed (exit code 1)" in rec.reason
    )
    assert t.executor.ran == [] and t.hooks.ran == [
        HookKind.PRE_FAILOVER,
        HookKind.POST_UNSUCCESSFUL_FAILOVER,
    ]
    assert rec.step("pre-failover-hooks").outcome is StepOutcome.FAILED  # type: ignore[union-attr]


async def test_failed_required_step_fails_the_recovery_and_nothing_is_published() -> None:
    t = rig(VIEW, executor=FakeExecutor(fail={"promote:": "read_only refused"}))
    rec = await t.pipeline.handle(detection(VIEW), StaticFence(1))
    assert rec.outcome is Outcome.FAILED and "read_only refused" in rec.reason
    assert t.masters.written == [] and HookKind.POST_UNSUCCESSFUL_FAILOVER in t.hooks.ran


@pytest.mark.parametrize(
    ("stored_active", "same_incident", "expected"),
    [
        (True, True, "already running"),
        (True, False, "already running"),
        (False, True, "already handled"),
        (False, False, None),
    ],
)
async def test_one_recovery_per_cluster(
    stored_active: bool, same_incident: bool, expected: str | None
) -> None:
    store = MemoryRecordStore()
    first = rig(VIEW, store=store)
    prior = await first.pipeline.handle(detection(VIEW, "inc-A"), StaticFence(1))
    assert prior.outcome is Outcome.SUCCEEDED
    if stored_active:
        reopened = prior.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None})
        store.records[reopened.alias] = reopened  # an open record of another process
    t = rig(VIEW, store=store)
    rec = await t.pipeline.handle(detection(VIEW, "inc-A" if same_incident else "inc-B"), StaticFence(1))
    if expected is None:
        assert rec.outcome is Outcome.SUCCEEDED
    else:
        assert rec.outcome is Outcome.SKIPPED and expected in rec.reason
        assert t.events.phases == ["skipped"] and t.executor.ran == []


async def test_not_leader_and_unhandled_codes_are_skipped_with_a_reason() -> None:
    t = rig(VIEW)
    fence = StaticFence(2)
    fence.lose()
    rec = await t.pipeline.handle(detection(VIEW), fence)
    assert rec.outcome is Outcome.SKIPPED and "not the recovery leader" in rec.reason
    det = detection(VIEW)
    other = det.model_copy(
        update={"finding": det.finding.model_copy(update={"code": Analysis.UNREACHABLE_CO_MASTER})}
    )
    rec = await t.pipeline.handle(other, StaticFence(2))
    assert rec.outcome is Outcome.SKIPPED and "no automated recovery for UnreachableCoMaster" in rec.reason


async def test_lost_leadership_leaves_the_record_open_and_the_next_leader_resumes_without_rerunning() -> None:
    store = MemoryRecordStore()
    old = rig(VIEW, store=store, executor=FakeExecutor(lose_lead_at="promote:"), node="old")
    with pytest.raises(LeadershipLost):
        await old.pipeline.handle(detection(VIEW), StaticFence(3))
    left = await store.current("test")
    assert left is not None and left.active and left.epoch == 3
    assert old.masters.written == []

    new = rig(VIEW, store=store, node="new")
    (rec,) = await new.pipeline.resume_open(StaticFence(8))
    assert rec.outcome is Outcome.SUCCEEDED and rec.epochs == [3, 8] and rec.node == "new"
    assert new.executor.ran == [f"promote:{k(1)}"]  # only what was not done
    assert [s.outcome for s in rec.steps if s.name == f"promote:{k(1)}"] == [
        StepOutcome.INTERRUPTED,
        StepOutcome.DONE,
    ]
    done = [s.name for s in rec.steps if s.outcome is StepOutcome.DONE]
    assert len(done) == len(set(done))
    assert new.hooks.ran == [HookKind.POST_MASTER_FAILOVER, HookKind.POST_FAILOVER]  # pre hooks not re-run
    assert new.masters.written[0].epoch == 8
    assert "resumed" in new.events.phases
    assert await new.pipeline.resume_open(StaticFence(9)) == []  # nothing open any more


async def test_an_old_leader_cannot_save_over_a_newer_epoch() -> None:
    store = MemoryRecordStore()
    old = rig(VIEW, store=store, executor=FakeExecutor(lose_lead_at="promote:"))
    with pytest.raises(LeadershipLost):
        await old.pipeline.handle(detection(VIEW), StaticFence(3))
    stale = await store.current("test")
    new = rig(VIEW, store=store)
    await new.pipeline.resume_open(StaticFence(8))
    assert stale is not None
    with pytest.raises(LeadershipLost):
        await store.save(stale)
