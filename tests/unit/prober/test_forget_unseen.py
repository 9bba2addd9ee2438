"""UnseenInstanceForgetHours: the tracker's bookkeeping (pure; the worker's forgetting is tested against
real servers in tests/integration/prober/test_forget_unseen.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from libs.config import Settings
from libs.models import InstanceKey, InstanceSnapshot
from services.prober.config import ProberConfig
from services.prober.forget import UnseenTracker, forget_after

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A, B = InstanceKey.parse("db-a:3306"), InstanceKey.parse("db-b:3306")
HOUR = timedelta(hours=1)


def up(key: InstanceKey) -> InstanceSnapshot:
    return InstanceSnapshot(key=key, probed_at=T0, reachable=True)


def down(key: InstanceKey) -> InstanceSnapshot:
    return InstanceSnapshot.unreachable(key, T0, "connection refused")


def test_unseen_longer_than_the_limit_is_due() -> None:
    t = UnseenTracker(HOUR)
    t.observe(up(A), T0)
    t.observe(down(B), T0)  # never seen by this worker: counts from now
    t.observe(down(A), T0 + 30 * timedelta(minutes=1))  # a failure does not move the last sighting
    assert t.due(T0 + HOUR) == {}
    assert t.due(T0 + HOUR + timedelta(seconds=1)) == {
        A: HOUR + timedelta(seconds=1),
        B: HOUR + timedelta(seconds=1),
    }
    t.observe(up(B), T0 + HOUR)
    assert set(t.due(T0 + HOUR + timedelta(seconds=1))) == {A}
    t.forgotten(A)
    assert t.due(T0 + 5 * HOUR) == {B: 4 * HOUR}


def test_instances_handed_back_start_afresh_and_zero_never_forgets() -> None:
    t = UnseenTracker(HOUR)
    t.observe(down(A), T0)
    t.retain([B])
    t.observe(down(A), T0 + 2 * HOUR)
    assert t.due(T0 + 2 * HOUR) == {}
    never = UnseenTracker(forget_after(0))
    never.observe(down(A), T0)
    assert never.due(T0 + 10_000 * HOUR) == {}


def test_the_setting_reaches_the_worker_config() -> None:
    settings = Settings(MySQLTopologyUser="baton", UnseenInstanceForgetHours=3)
    assert ProberConfig.from_settings(settings).forget_unseen_after == 3 * HOUR
    off = Settings(MySQLTopologyUser="baton", UnseenInstanceForgetHours=0)
    assert ProberConfig.from_settings(off).forget_unseen_after is None
    assert ProberConfig.from_settings(Settings(MySQLTopologyUser="baton")).forget_unseen_after == 240 * HOUR


def test_skipped_scans_hide_nothing() -> None:
    """`due` skips its walk over the instances until the oldest sighting can be due; whatever the
    order of sightings, failures, hand-backs and restores, it answers as a full walk every call would."""
    rng = random.Random(18)
    keys = [InstanceKey.parse(f"db-{i}:3306") for i in range(40)]
    t = UnseenTracker(HOUR)
    reference: dict[InstanceKey, datetime] = {}
    now = T0
    for _ in range(3000):
        now += timedelta(seconds=rng.randrange(0, 240))
        key = rng.choice(keys)
        action = rng.random()
        if action < 0.45:
            snap = up(key) if rng.random() < 0.3 else down(key)
            t.observe(snap, now)
            if snap.reachable or key not in reference:
                reference[key] = now
        elif action < 0.5:
            kept = rng.sample(keys, 30)
            t.retain(kept)
            reference = {k: at for k, at in reference.items() if k in kept}
        elif action < 0.55 and key not in reference:
            since = now - timedelta(minutes=rng.randrange(0, 120))
            t.restore(key, since)
            reference[key] = since
        expected = {k: now - at for k, at in reference.items() if now - at > HOUR}
        assert t.due(now) == expected
        for k in list(expected)[: rng.randrange(0, 3)]:
            t.forgotten(k)
            del reference[k]
