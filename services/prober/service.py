"""One prober worker, wired: registry watch → shard leases → probe tasks → snapshots, discovery, liveness.

The worker probes exactly the registered instances whose shard it holds. That set is recomputed
(synchronously, so no probe of a dropped instance publishes afterwards) whenever the registry or the
held shards change; the shard keeper reports a lost lease the moment it is lost.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from libs.aio import cancel_all
from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.config import Settings
from libs.config.derive import nats_security
from libs.discovery import registry as reg
from libs.discovery.names import Names
from libs.errors import BusError
from libs.models import InstanceKey, InstanceSnapshot, utcnow
from libs.mysql import probe
from libs.service_main import require_nats
from libs.topology.shards import shard_of
from services.prober.config import ProberConfig
from services.prober.discovery import Discovery
from services.prober.forget import UnseenTracker
from services.prober.liveness import LivenessWatch
from services.prober.loop import ProbeLoop
from services.prober.probe_now import ProbeNowResponder
from services.prober.shards import ShardKeeper

log = logging.getLogger(__name__)


class ProberWorker:
    def __init__(self, config: ProberConfig, bus: Bus) -> None:
        self.config = config
        self.bus = bus
        js = bus.js
        self.registry = reg.Registry(js, on_change=self.reconcile)
        self.names = Names(
            config.hostname_method,
            config.mysql_hostname_method,
            aliases=lambda: self.registry.aliases,
            on_rename=lambda old, new: self.discovery.rename(old, new),
        )
        self.discovery = Discovery(
            js, self.registry, self.names, worker=config.worker_id, ignore=config.ignore
        )
        self.loop = ProbeLoop(config, js, normalize=self.names.normalize, on_snapshot=self._on_snapshot)
        self.liveness: LivenessWatch | None = None
        if config.liveness_watch:
            self.liveness = LivenessWatch(
                config.credentials,
                on_lost=self.loop.wake,
                on_hung=self.loop.report_unanswered,
                connect_timeout=config.probe.connect_timeout,
                sleep_s=config.liveness_sleep_s,
                margin_s=config.liveness_margin_s,
            )
        self.shards = ShardKeeper(
            js,
            config.worker_id,
            shard_count=config.shard_count,
            ttl_s=config.lease_ttl_s,
            round_s=config.round_s,
            on_change=self.reconcile,
            on_regained=self.registry.resync,
        )
        self.responder = ProbeNowResponder(
            bus.nc,
            config.worker_id,
            config.shard_count,
            held=lambda: self.shards.held,
            probe=self.probe_now,
            probe_unowned=self.probe_unowned,
        )
        self._shard_cache: dict[InstanceKey, int] = {}
        self.unseen = UnseenTracker(config.forget_unseen_after)
        self._forgetting: set[asyncio.Task[None]] = set()
        self.started = False

    @property
    def worker_id(self) -> str:
        return self.config.worker_id

    def shard(self, key: InstanceKey) -> int:
        shard = self._shard_cache.get(key)
        if shard is None:
            shard = self._shard_cache[key] = shard_of(key, self.config.shard_count)
        return shard

    def owned(self) -> set[InstanceKey]:
        held = self.shards.held
        if not held:
            return set()
        return {k for k in self.registry.entries if self.shard(k) in held}

    def reconcile(self) -> None:
        """Probe exactly the registered instances in the shards held now."""
        if not self.started:
            return
        owned = self.owned()
        self.loop.set_owned(owned)
        self.unseen.retain(owned)
        if self.liveness is not None:
            self.liveness.retain(owned)

    def _on_snapshot(self, snap: InstanceSnapshot) -> None:
        self.discovery.observe(snap)
        if self.liveness is not None and snap.key in self.loop.tasks:
            self.liveness.update(snap)
        if snap.key in self.loop.tasks:
            now = utcnow()
            self.unseen.observe(snap, now)
            for key, unseen in self.unseen.due(now).items():
                self.unseen.forgotten(key)
                task = asyncio.create_task(self._forget(key, unseen), name=f"forget {key}")
                self._forgetting.add(task)
                task.add_done_callback(self._forgetting.discard)

    async def _forget(self, key: InstanceKey, unseen: timedelta) -> None:
        """UnseenInstanceForgetHours: remove `key` from the registry (services/prober/forget.py)."""
        try:
            if await reg.forget(self.bus.js, key):
                log.warning("forgot %s: not seen for %s (UnseenInstanceForgetHours)", key, unseen)
        except BusError as exc:
            log.warning("could not forget long-unseen %s (retried on its next probe): %s", key, exc)
            self.unseen.restore(key, utcnow() - unseen)

    async def probe_now(self, key: InstanceKey) -> InstanceSnapshot:
        """A fresh, published probe of `key` (for probe-now); drops the connection of a stranger."""
        snap = await self.loop.probe_once(key)
        if key not in self.loop.tasks:
            self.loop.pool.discard(key)
        return snap

    async def probe_unowned(self, key: InstanceKey) -> InstanceSnapshot:
        """Probe-now's fallback for an instance whose shard's holder did not answer: probed and returned
        at once, not published (its owner publishes; JetStream may be what is failing right now)."""
        loop = self.loop
        snap = await probe(
            key, self.config.credentials, self.config.probe, pool=loop.pool, prober=self.worker_id
        )
        if loop.normalize is not None:
            snap = loop.normalize(key, snap)
        if key not in loop.tasks:
            loop.pool.discard(key)
        return snap

    async def register_seeds(self) -> None:
        for seed in self.config.seeds:
            try:
                key = await self.names.resolve(InstanceKey.parse(seed))
            except ValueError as exc:
                log.warning("DiscoverySeeds: skipping %r: %s", seed, exc)
                continue
            try:
                await reg.register(self.bus.js, key, source="seed", added_by=self.worker_id)
            except BusError as exc:
                log.warning("could not register seed %s: %s", key, exc)

    async def start(self, *, ready_timeout_s: float = 10.0) -> ProberWorker:
        self.registry.start()
        try:
            await asyncio.wait_for(self.registry.ready.wait(), ready_timeout_s)
        except TimeoutError:
            await self.registry.stop()
            raise BusError(f"could not read the instance registry within {ready_timeout_s:g}s") from None
        await self.register_seeds()
        self.started = True
        await self.responder.start()
        self.shards.start()
        log.info("prober worker %s started (%d shards)", self.worker_id, self.config.shard_count)
        return self

    async def stop(self, *, release: bool = True) -> None:
        """Stop probing; with `release` hand the shard leases back at once (clean shutdown). Without it
        the leases run out their TTL, exactly as after a crash."""
        self.started = False
        await self.responder.stop()
        self.loop.set_owned(())
        await self.shards.stop(release=release)
        await self.registry.stop()
        await self.discovery.stop()
        await self.loop.stop()
        await cancel_all(list(self._forgetting))
        if self.liveness is not None:
            await self.liveness.stop()
        log.info("prober worker %s stopped", self.worker_id)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run one worker until `stop` is set (libs.service_main's contract)."""
    require_nats(settings, "prober")
    config = ProberConfig.from_settings(settings)
    bus = await connect(
        settings.BatonNatsURLs, f"baton-prober {config.worker_id}", security=nats_security(settings)
    )
    try:
        await provision(bus.js, settings.BatonStreamReplicas)
        worker = await ProberWorker(config, bus).start()
        try:
            await stop.wait()
            log.info("prober %s: shutting down", config.worker_id)
        finally:
            await worker.stop(release=True)
    finally:
        await bus.close()
