"""Everything the API's routes read and act through: settings, NATS, the read model, the in-memory
fleet, the KV mirrors, the projector and the SSE hub. Started by the app's lifespan (or by a test)."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta

from pydantic import ValidationError

from libs.bus import provision as buckets
from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.subjects import kv_key_decode
from libs.config import Settings
from libs.config.derive import analysis_params, nats_security, read_model_tls
from libs.models import InstanceKey, MasterRecord, utcnow
from libs.models.operator import GLOBAL_RECOVERIES_KEY, CandidateRecord, GlobalRecoveries
from libs.recovery.control import undecodable_global_recoveries
from libs.recovery.downtime import Downtime
from libs.store import Store, open_store, queries
from libs.topology.succession import Directory, follow_masters
from libs.topology.view import ClusterView
from services.api.fleet_views import Fleet
from services.api.hub import Hub
from services.api.kvmirror import KVMirror
from services.api.projector import Projector

log = logging.getLogger(__name__)

DEFAULT_NATS = "nats://127.0.0.1:4222"


def _decode_keyed(
    entries: dict[str, bytes], model: type[Downtime] | type[CandidateRecord]
) -> dict[InstanceKey, object]:
    out: dict[InstanceKey, object] = {}
    for kv_name, raw in entries.items():
        try:
            key = InstanceKey.parse(kv_key_decode(kv_name))
            out[key] = model.model_validate_json(raw)
        except (ValidationError, ValueError):
            log.debug("ignoring undecodable KV entry %s", kv_name)
    return out


class Runtime:
    def __init__(
        self, settings: Settings, *, nats_urls: list[str] | None = None, store_url: str | None = None
    ):
        self.settings = settings
        self.nats_urls = nats_urls or settings.BatonNatsURLs or [DEFAULT_NATS]
        self.store_url = store_url or settings.read_model_url().get_secret_value()
        self.params = analysis_params(settings)
        self.poll = timedelta(seconds=settings.InstancePollSeconds)
        self.hub = Hub()
        self.fleet = Fleet()
        self.started_at = utcnow()
        self.started_monotonic = time.monotonic()
        self._bus: Bus | None = None
        self._store: Store | None = None
        self.projector: Projector | None = None
        self.mirrors: dict[str, KVMirror] = {}
        self._records: tuple[int, list[MasterRecord]] = (-1, [])

    @property
    def bus(self) -> Bus:
        assert self._bus is not None, "runtime not started"
        return self._bus

    @property
    def store(self) -> Store:
        assert self._store is not None, "runtime not started"
        return self._store

    async def start(self) -> None:
        tls = read_model_tls(self.settings)
        self._store = await open_store(
            self.store_url,
            tls=tls.context() if tls is not None else None,
            read_timeout=float(self.settings.MySQLOrchestratorReadTimeoutSeconds),
        )
        self.fleet = Fleet(await queries.instance_states(self._store))
        self._bus = await connect(
            self.nats_urls, f"baton-api@{self.settings.BatonNodeName}", security=nats_security(self.settings)
        )
        await provision(self._bus.js, self.settings.BatonStreamReplicas)
        mirrored = (
            buckets.DOWNTIME,
            buckets.CANDIDATES,
            buckets.SETTINGS,
            buckets.MASTERS,
            buckets.TAGS,
            buckets.MAINTENANCE,
        )
        for bucket in mirrored:
            self.mirrors[bucket] = KVMirror(self._bus.js, bucket).start()
        self.projector = Projector(self._bus.js, self._store, self.fleet, self.hub)
        await self.projector.start()

    async def stop(self) -> None:
        if self.projector is not None:
            await self.projector.stop()
        for mirror in self.mirrors.values():
            await mirror.stop()
        if self._bus is not None:
            await self._bus.close()
        if self._store is not None:
            await self._store.close()

    # -- reads the routes share ----------------------------------------------------------------------
    def now(self) -> datetime:
        return utcnow()

    def downtimes(self) -> dict[InstanceKey, Downtime]:
        mirror = self.mirrors.get(buckets.DOWNTIME)
        if mirror is None:
            return {}
        now = self.now()
        found = _decode_keyed(mirror.entries, Downtime)
        return {k: v for k, v in found.items() if isinstance(v, Downtime) and v.started_at <= now < v.ends_at}

    def candidates(self) -> dict[InstanceKey, CandidateRecord]:
        mirror = self.mirrors.get(buckets.CANDIDATES)
        if mirror is None:
            return {}
        now = self.now()
        found = _decode_keyed(mirror.entries, CandidateRecord)
        return {k: v for k, v in found.items() if isinstance(v, CandidateRecord) and v.active(now)}

    def global_recoveries(self) -> GlobalRecoveries | None:
        mirror = self.mirrors.get(buckets.SETTINGS)
        raw = mirror.entries.get(GLOBAL_RECOVERIES_KEY) if mirror else None
        if raw is None:
            return None
        with contextlib.suppress(ValidationError):
            return GlobalRecoveries.model_validate_json(raw)
        return undecodable_global_recoveries()  # fail closed, as the recovery reads it

    def master_records(self) -> list[MasterRecord]:
        """`baton_masters`: who each alias's master is, as the recovery (or the first sighting) published."""
        mirror = self.mirrors.get(buckets.MASTERS)
        if mirror is None:
            return []
        if self._records[0] == mirror.version:  # decoded once per change, not once per request
            return self._records[1]
        out: list[MasterRecord] = []
        for kv_name, raw in mirror.entries.items():
            try:
                out.append(MasterRecord.model_validate_json(raw))
            except ValidationError:
                log.warning("baton_masters/%s: undecodable record ignored", kv_name)
        self._records = (mirror.version, out)
        return out

    def directory(self) -> Directory:
        """The clusters with the alias on the recorded master's cluster and dead old masters folded into
        their successor's cluster (libs/topology/succession.py)."""
        views = self.fleet.views(frozenset(self.downtimes()))
        return follow_masters(views, self.master_records(), self.now(), self.params.stale_after)

    def views(self) -> list[ClusterView]:
        return list(self.directory().views)

    def healthy(self) -> bool:
        return self._bus is not None and self._bus.nc.is_connected
