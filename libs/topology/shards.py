"""Which prober worker probes which instance: shards, and who should hold them.

Instances hash into a fixed number of shards (a stable CRC32 of `host:port`, never Python's salted
`hash()`, so every process agrees). Workers hold shard leases in KV `baton_shards`. Each worker aims at
its fair share `ceil(shards / live workers)`, preferring the shards it scores highest on by rendezvous
(highest-random-weight) hashing, so the assignment is stable: when a worker joins or leaves only about
`1/workers` of the shards move.

The plan is pure; `services/prober` applies it. A worker releases a shard *before* another can take it
(the other only sees it free once the lease key is gone), and a worker that cannot renew a lease stops
probing that shard at once — so no instance is probed by two workers for longer than one renewal.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from libs.models import InstanceKey

DEFAULT_SHARD_COUNT = 32


def shard_of(key: InstanceKey | str, shard_count: int = DEFAULT_SHARD_COUNT) -> int:
    """The shard an instance belongs to: stable across processes, hosts and Python versions."""
    return zlib.crc32(str(key).encode()) % shard_count


def _score(worker: str, shard: int) -> int:
    """The rendezvous weight of `worker` for `shard`. A cryptographic digest, not CRC32: CRC is
    linear, so for two workers the comparison came out the same on many shards at once (with the
    worker names `alphaN`/`betaN`, one worker won shards 18, 24 and 28 for every N tried)."""
    return int.from_bytes(hashlib.blake2b(f"{worker}/{shard}".encode(), digest_size=8).digest(), "big")


def preferred_order(worker: str, shard_count: int) -> list[int]:
    """Shards in the order this worker prefers them (rendezvous hashing)."""
    return sorted(range(shard_count), key=lambda s: (-_score(worker, s), s))


def fair_share(shard_count: int, live_workers: int) -> int:
    return math.ceil(shard_count / max(1, live_workers))


class ShardPlan(BaseModel):
    """What one worker should do this round: shards to try to acquire and shards to give up."""

    model_config = ConfigDict(frozen=True)

    acquire: tuple[int, ...] = ()
    release: tuple[int, ...] = ()
    target: int = 0


def plan_shards(
    worker: str,
    holders: Mapping[int, str],
    live_workers: Iterable[str],
    shard_count: int = DEFAULT_SHARD_COUNT,
) -> ShardPlan:
    """Decide which free shards to claim and which held shards to hand back.

    `holders` maps each currently leased shard to its holder; absent shards are free. Every shard has one
    *owner*: the live worker that scores highest on it. A worker claims the free shards it owns and hands
    back the shards it holds that another live worker owns. It never claims a held shard: it waits for
    the holder to release it (or for the lease to expire), so two workers never probe one shard.
    A dead worker drops out of `live_workers` when its heartbeat lease expires; its shards then have new
    owners, who claim them as their leases expire.
    """
    live = sorted(set(live_workers) | {worker})

    def owner(shard: int) -> str:
        return max(live, key=lambda w: (_score(w, shard), w))

    release = tuple(sorted(s for s, h in holders.items() if h == worker and owner(s) != worker))
    acquire = tuple(s for s in range(shard_count) if s not in holders and owner(s) == worker)
    return ShardPlan(acquire=acquire, release=release, target=fair_share(shard_count, len(live)))
