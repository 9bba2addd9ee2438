from __future__ import annotations

import pytest

from libs.models import InstanceKey
from libs.topology.shards import plan_shards, shard_of


def converge(workers: list[str], holders: dict[int, str], n: int, rounds: int = 4) -> dict[int, str]:
    """Apply plans round after round (each worker in turn), like the prober loop does."""
    for _ in range(rounds):
        for w in workers:
            plan = plan_shards(w, holders, workers, n)
            for s in plan.release:
                assert holders.pop(s) == w
            for s in plan.acquire:
                assert s not in holders, "a plan must never claim a held shard"
                holders[s] = w
    return holders


def test_shard_of_is_stable_and_spread() -> None:
    keys = [InstanceKey(host=f"db-{i}.dc1.example.com", port=3306) for i in range(3200)]
    counts = [0] * 32
    for k in keys:
        counts[shard_of(k)] += 1
    assert shard_of(keys[0]) == shard_of(str(keys[0]))  # same from a key or its text
    assert shard_of("db-1.dc2.example.com:3306") == 4  # pinned: must never change across releases
    assert min(counts) > 50 and max(counts) < 160


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_every_shard_held_by_exactly_one_worker(workers: int) -> None:
    names = [f"w{i}" for i in range(workers)]
    holders = converge(names, {}, 32)
    assert sorted(holders) == list(range(32))
    per_worker = {w: sum(1 for h in holders.values() if h == w) for w in names}
    # rendezvous hashing is balanced in expectation, not exactly: no worker idles, none hoards
    assert all(c > 0 for c in per_worker.values())
    assert max(per_worker.values()) <= 32 * 0.75 or workers == 1


def test_death_moves_only_the_dead_workers_shards() -> None:
    names = ["w0", "w1", "w2"]
    holders = converge(names, {}, 32)
    before = dict(holders)
    dead = {s for s, h in holders.items() if h == "w2"}
    for s in dead:  # its leases expire
        del holders[s]
    after = converge(["w0", "w1"], holders, 32)
    assert sorted(after) == list(range(32))
    moved = {s for s in range(32) if before[s] != after[s]}
    assert moved == dead


def test_joining_worker_gets_shards_handed_over_without_overlap() -> None:
    holders = converge(["w0"], {}, 16)
    assert set(holders.values()) == {"w0"}
    # w1 joins: w0 releases w1's shards first (w1 cannot claim held ones), then w1 claims them
    plan_new = plan_shards("w1", holders, ["w0", "w1"], 16)
    assert plan_new.acquire == ()
    after = converge(["w0", "w1"], holders, 16)
    assert sorted(after) == list(range(16))
    assert "w1" in after.values()
