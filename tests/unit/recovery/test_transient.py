"""Issue 11 item 6, "no stuck cluster", with fake collaborators: transient bus errors never close a
recovery as FAILED (nor leave an anti-flapping block); after promotion the outcome is saved and the
master published whatever it takes; what nobody drives any more is resumed, never promoted twice."""

from __future__ import annotations

import asyncio

import pytest

from libs.errors import BusError, LeadershipLost
from libs.models import MasterRecord
from libs.recovery.audit import Outcome, RecoveryRecord, StepOutcome
from libs.recovery.control import MemoryControlState
from libs.recovery.fence import StaticFence
from libs.recovery.pipeline import RecoveryPaused, RetryPolicy
from libs.recovery.policy import Policy
from libs.recovery.record_store import MemoryRecordStore
from tests.unit.candidate.builders import cluster, k, r
from tests.unit.recovery.fakes import Rig, detection, rig
from tests.unit.recovery.flaky import Fault, FlakyStore, not_promoted, promoted

VIEW = cluster(r(1), r(2, pos="0-1-90"), r(3, pos="0-1-80"))
FAST = RetryPolicy(first_s=0.001, max_delay_s=0.01, budget_s=0.2)
PROMOTE = f"promote:{k(1)}"


def flaky_rig(
    store: FlakyStore | None = None, node: str = "n1"
) -> tuple[Rig, FlakyStore, MemoryControlState]:
    flaky = store or FlakyStore(MemoryRecordStore())
    control = MemoryControlState()
    t = rig(VIEW, store=flaky, control=control, policy=Policy(block_seconds=3600), node=node)  # type: ignore[arg-type]
    t.pipeline.c.retry = FAST
    return t, flaky, control


def promotions(t: Rig) -> list[str]:
    return [n for n in t.executor.ran if n.startswith("promote:")]


async def stored(store: FlakyStore) -> RecoveryRecord:
    (only,) = await store.inner.latest_records()
    return only


async def test_transient_save_errors_before_promotion_are_retried_not_failed() -> None:
    t, store, _ = flaky_rig()
    store.inject(Fault("save", times=3, when=not_promoted))
    rec = await t.pipeline.handle(detection(VIEW), StaticFence(4))
    assert store.raised == ["save"] * 3
    assert rec.outcome is Outcome.SUCCEEDED, rec.reason
    assert "failed" not in t.events.phases and promotions(t) == [PROMOTE]
    assert [m.master for m in t.masters.written] == [k(1)]
    assert (await stored(store)).outcome is Outcome.SUCCEEDED


async def test_bus_errors_outlasting_the_budget_before_promotion_leave_the_record_open() -> None:
    t, store, control = flaky_rig()
    store.inject(Fault("save", times=None))
    fence = StaticFence(4)
    with pytest.raises(RecoveryPaused):
        await t.pipeline.handle(detection(VIEW), fence)
    left = await stored(store)
    assert left.active and left.epoch == 4  # not FAILED ...
    assert control.block == {} and "failed" not in t.events.phases  # ... and no anti-flapping block
    assert t.executor.ran == []  # every step's start or end needs a save: nothing was done

    # the sweep of the same term finds it (nobody drives it) once the bus is back
    store.heal()
    assert [o.uid for o in await t.pipeline.orphans(fence)] == [left.uid]
    (rec,) = await t.pipeline.resume_open(fence)
    assert rec.outcome is Outcome.SUCCEEDED and rec.epochs == [4]
    assert promotions(t) == [PROMOTE] and (await stored(store)).outcome is Outcome.SUCCEEDED


async def test_save_failures_after_promotion_are_retried_past_the_budget_until_saved_and_published() -> None:
    t, store, _ = flaky_rig()
    store.inject(Fault("save", times=None, when=promoted))
    loop = asyncio.get_running_loop()
    loop.call_later(3 * FAST.budget_s, store.heal)  # well past the budget before promotion
    rec = await t.pipeline.handle(detection(VIEW), StaticFence(4))
    assert len(store.raised) > 3
    assert rec.outcome is Outcome.SUCCEEDED and rec.published_at is not None
    assert [m.master for m in t.masters.written] == [k(1)] and promotions(t) == [PROMOTE]
    saved = await stored(store)
    assert saved.outcome is Outcome.SUCCEEDED and saved.published_at is not None


async def test_final_save_is_retried() -> None:
    t, store, _ = flaky_rig()
    store.inject(Fault("save", times=3, when=lambda rec: not rec.active))
    rec = await t.pipeline.handle(detection(VIEW), StaticFence(4))
    assert store.raised == ["save"] * 3 and rec.outcome is Outcome.SUCCEEDED
    assert (await stored(store)).outcome is Outcome.SUCCEEDED
    assert t.events.phases[-1] == "completed"


class FailingMasters:
    """baton_masters never answers; with `fence`, the lease is lost once the publish has been retried
    for `lose_after_s` (timed from the first try, not from the test's start: a loaded machine may take
    long to get there)."""

    def __init__(self, fence: StaticFence | None = None, lose_after_s: float = 0.0) -> None:
        self.tries = 0
        self.fence, self.lose_after_s = fence, lose_after_s
        self.first: float | None = None

    async def __call__(self, record: MasterRecord) -> None:
        self.tries += 1
        now = asyncio.get_running_loop().time()
        self.first = now if self.first is None else self.first
        if self.fence is not None and now - self.first >= self.lose_after_s:
            self.fence.lose()
        raise BusError("baton_masters: timed out")


async def test_lease_lost_while_publishing_after_promotion_the_next_leader_publishes_without_promoting() -> (
    None
):
    shared = FlakyStore(MemoryRecordStore())
    old, _, _ = flaky_rig(shared, node="old")
    fence = StaticFence(3)
    failing = FailingMasters(fence, lose_after_s=3 * FAST.budget_s)
    old.pipeline.c.masters = failing
    with pytest.raises(LeadershipLost):
        await old.pipeline.handle(detection(VIEW), fence)
    assert failing.tries > 3  # retried past the budget: it was promoted
    left = await stored(shared)
    assert left.active and left.promoted_at is not None and not left.done("publish-master")

    new, _, _ = flaky_rig(shared, node="new")
    (rec,) = await new.pipeline.resume_open(StaticFence(8))
    assert rec.outcome is Outcome.SUCCEEDED and rec.epochs == [3, 8]
    assert new.executor.ran == []  # nothing on MySQL: never a second promotion
    assert [(m.master, m.epoch) for m in new.masters.written] == [(k(1), 8)]
    assert rec.done("post-hooks") and new.hooks.ran  # the post hooks are the new leader's
    assert [s.epoch for s in rec.steps if s.name == PROMOTE and s.outcome is StepOutcome.DONE] == [3]


async def test_a_registration_whose_reply_was_lost_is_not_busy() -> None:
    t, store, _ = flaky_rig()
    store.inject(Fault("register", times=1, landed=True))
    rec = await t.pipeline.handle(detection(VIEW), StaticFence(4))
    assert store.raised == ["register"] and rec.outcome is Outcome.SUCCEEDED, rec.reason
    assert "skipped" not in t.events.phases


async def test_a_registration_that_landed_but_kept_failing_is_driven_by_the_sweep() -> None:
    t, store, _ = flaky_rig()
    store.inject(Fault("register", times=None, landed=True))
    fence = StaticFence(4)
    with pytest.raises(RecoveryPaused):
        await t.pipeline.admit(detection(VIEW), fence)
    left = await stored(store)
    assert left.active and t.executor.ran == []
    store.heal()
    (rec,) = await t.pipeline.resume_open(fence)  # what the sweep does
    assert rec.uid == left.uid and rec.outcome is Outcome.SUCCEEDED
    assert promotions(t) == [PROMOTE]


async def test_a_deposed_leader_does_not_close_publish_or_block_what_a_newer_leader_adopted() -> None:
    shared = FlakyStore(MemoryRecordStore())
    old, _, old_control = flaky_rig(shared, node="old")
    new, _, new_control = flaky_rig(shared, node="new")
    resumed: list[RecoveryRecord] = []

    async def paused_past_its_lease(step: str, record: RecoveryRecord) -> None:
        if step == "post-hooks":  # meanwhile a newer leader adopts and finishes the record
            resumed.extend(await new.pipeline.resume_open(StaticFence(8)))

    old.pipeline.c.after_step = paused_past_its_lease
    rec = await old.pipeline.handle(detection(VIEW), StaticFence(3))
    assert [r.outcome for r in resumed] == [Outcome.SUCCEEDED] and resumed[0].epochs == [3, 8]
    saved = await stored(shared)
    assert saved.epoch == 8 and saved.outcome is Outcome.SUCCEEDED
    assert rec.outcome is Outcome.SUCCEEDED  # what the old leader thinks; nothing of it was written
    assert "completed" not in old.events.phases and old_control.block == {}
    assert "completed" in new.events.phases and len(new_control.block) == 1
