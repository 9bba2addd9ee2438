"""The shard lease loop: which shards this worker holds, kept true every round.

KV `baton_shards` holds `worker.<id>` (heartbeat) and `shard.<n>` leases, all with a per-message TTL and
renewed by compare-and-set (`libs.bus.lease`). Every `round_s` the keeper:
1. makes sure its heartbeat lease is held (a worker without one holds nothing);
2. reads the bucket (one consumer pass; the watcher understands the server's TTL-expiry markers);
3. applies `plan_shards` (pure, `libs/topology/shards.py`): releases the shards another live worker owns
   — after it stopped probing them — and claims the free shards it owns.

Each held lease has its own `LeaseKeeper`; the moment one cannot be renewed (refused, or its deadline
passed while the broker is unreachable) the shard is dropped and `on_change` fires, so its instances
stop being probed at once. Losing the heartbeat drops every shard. A worker that loses JetStream thus
loses all of its shards within one TTL, and claims them again, as a newcomer, once the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from nats.js import JetStreamContext

from libs.aio import cancel_and_wait
from libs.bus import kvread
from libs.bus import lease as leases
from libs.bus.connection import describe
from libs.bus.provision import SHARDS
from libs.bus.subjects import kv_key
from libs.errors import BusError
from libs.topology.shards import plan_shards

log = logging.getLogger(__name__)

WORKER_PREFIX = "worker."
SHARD_PREFIX = "shard."


def shard_key(shard: int) -> str:
    return f"{SHARD_PREFIX}{shard}"


def worker_key(worker: str) -> str:
    return f"{WORKER_PREFIX}{kv_key(worker)}"


async def read_table(js: JetStreamContext) -> tuple[dict[int, str], set[str]]:
    """(holder of each leased shard, live workers) as the bucket says now."""
    holders: dict[int, str] = {}
    live: set[str] = set()
    for entry in await kvread.scan(js, SHARDS):
        try:
            holder = str(json.loads(entry.value or b"{}")["holder"])
        except (ValueError, KeyError, TypeError):
            continue
        if entry.key.startswith(WORKER_PREFIX):
            live.add(holder)
        elif entry.key.startswith(SHARD_PREFIX):
            with contextlib.suppress(ValueError):
                holders[int(entry.key[len(SHARD_PREFIX) :])] = holder
    return holders, live


async def _stop_quietly(keeper: leases.LeaseKeeper, *, release: bool) -> None:
    """Stop a keeper; a release that cannot reach the broker in time is not an error (the lease
    expires by itself)."""
    with contextlib.suppress(TimeoutError, BusError):
        await keeper.stop(release_lease=release)


class ShardKeeper:
    """Holds this worker's heartbeat and shard leases; `held` is the set of shards it may probe."""

    def __init__(
        self,
        js: JetStreamContext,
        worker: str,
        *,
        shard_count: int,
        ttl_s: int = 3,
        round_s: float = 1.0,
        on_change: Callable[[], None] | None = None,
        on_regained: Callable[[], None] | None = None,
    ) -> None:
        self.js = js
        self.worker = worker
        self.shard_count = shard_count
        self.ttl_s = ttl_s
        self.round_s = round_s
        self.on_change = on_change
        self.on_regained = on_regained
        self.heartbeat: leases.LeaseKeeper | None = None
        self.keepers: dict[int, leases.LeaseKeeper] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def held(self) -> frozenset[int]:
        """Shards certainly ours right now (their lease deadline has not passed)."""
        if self.heartbeat is None or not self.heartbeat.held:
            return frozenset()
        return frozenset(s for s, k in self.keepers.items() if k.held)

    def start(self) -> ShardKeeper:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"shards {self.worker}")
        return self

    async def stop(self, *, release: bool = True) -> None:
        """Stop; with `release` hand every lease back at once (a clean shutdown), else let them expire
        (what a crash looks like to the others)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        keepers = list(self.keepers.values())
        self.keepers.clear()
        self._notify()
        await asyncio.gather(*(_stop_quietly(k, release=release) for k in keepers))
        if self.heartbeat is not None:
            await _stop_quietly(self.heartbeat, release=release)
            self.heartbeat = None

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _lost(self, shard: int | None) -> Callable[[str], None]:
        def lost(reason: str) -> None:
            if shard is None:
                log.warning("worker %s lost its heartbeat (%s): dropping every shard", self.worker, reason)
                dropped = list(self.keepers.values())
                self.keepers.clear()
                for keeper in dropped:  # as good as lost: stop renewing; they expire on the server
                    asyncio.get_running_loop().create_task(_stop_quietly(keeper, release=False))
            else:
                log.warning("worker %s lost shard %d: %s", self.worker, shard, reason)
                self.keepers.pop(shard, None)
            self._notify()

        return lost

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
                if self._failing:
                    self._failing = False
                    log.info("worker %s: shard leases working again", self.worker)
                    if self.on_regained is not None:
                        self.on_regained()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the round must outlive any broker trouble
                if not self._failing:
                    log.warning("worker %s: shard round failed: %s", self.worker, describe(exc))
                self._failing = True
            await asyncio.sleep(self.round_s)

    async def _ensure_heartbeat(self) -> None:
        if self.heartbeat is not None and self.heartbeat.held:
            return
        if self.heartbeat is not None:
            await _stop_quietly(self.heartbeat, release=False)
            self.heartbeat = None
        lease = await leases.acquire(self.js, SHARDS, worker_key(self.worker), self.worker, self.ttl_s)
        if lease is None:
            raise BusError(
                f"heartbeat lease of worker {self.worker} is still held (waiting for it to expire)"
            )
        self.heartbeat = leases.LeaseKeeper(self.js, lease, on_lost=self._lost(None)).start()
        self._notify()  # shards kept through a heartbeat gap count again

    async def step(self) -> None:
        """One round: heartbeat, read the table, release what others own, claim what we own."""
        await self._ensure_heartbeat()
        holders, live = await read_table(self.js)
        # Leases we lost but whose keeper has not noticed yet are not ours: trust our keepers first.
        for shard, keeper in list(self.keepers.items()):
            if not keeper.held:
                self.keepers.pop(shard, None)
                self._notify()
        if self.heartbeat is None or not self.heartbeat.held:
            return  # lost while we read: claim nothing this round
        plan = plan_shards(self.worker, holders, live, self.shard_count)
        if plan.release:
            dropped = [self.keepers.pop(s) for s in plan.release if s in self.keepers]
            self._notify()  # stop probing first ...
            await asyncio.gather(*(_stop_quietly(k, release=True) for k in dropped))  # ... then hand back
        if plan.acquire:
            got = await asyncio.gather(
                *(
                    leases.acquire(self.js, SHARDS, shard_key(s), self.worker, self.ttl_s)
                    for s in plan.acquire
                ),
                return_exceptions=True,
            )
            added = False
            for shard, lease in zip(plan.acquire, got, strict=True):
                if isinstance(lease, leases.Lease):
                    self.keepers[shard] = leases.LeaseKeeper(
                        self.js, lease, on_lost=self._lost(shard)
                    ).start()
                    added = True
                elif isinstance(lease, BaseException):
                    log.info("worker %s: could not claim shard %d: %s", self.worker, shard, lease)
            if added:
                self._notify()
