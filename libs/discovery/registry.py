"""The registry of known instances: KV bucket `baton_instances`, watched by every prober worker.

Format (a stable public contract; the analyzer, API and CLI read it):
- key: `kv_key(str(instance_key))`, e.g. `127_0_0_1=3306` for `127.0.0.1:3306`;
- value: the JSON of `RegistryEntry`:
  `{"instance": "127.0.0.1:3306", "added_at": "<UTC ISO-8601>", "added_by": "<worker id | cli@node |
  config@node>", "source": "seed|cli|discovered|resolved", "via": "<host:port that pointed here, or ''>",
  "aliases": ["<other host:port names of this instance>"]}`.

Writers only ever `create` (first writer wins; "already there" is success) and `delete` (forget), so
any number of workers and CLIs can discover the same instance at once. An instance whose canonical name
(MySQLHostnameResolveMethod) differs from the name it was found under is registered under the canonical
name with the old one in `aliases`, and the old entry is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import BaseModel, ConfigDict, ValidationError

from libs.aio import cancel_and_wait
from libs.bus import kvread
from libs.bus.connection import bus_errors
from libs.bus.provision import INSTANCES
from libs.bus.subjects import kv_key
from libs.discovery import kvscan
from libs.models import InstanceKey, utcnow

log = logging.getLogger(__name__)


class RegistryEntry(BaseModel):
    """One known instance."""

    model_config = ConfigDict(frozen=True)

    instance: str  # canonical `host:port`
    added_at: datetime
    added_by: str = ""
    source: str = "discovered"
    via: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def key(self) -> InstanceKey:
        return InstanceKey.parse(self.instance)

    def alias_keys(self) -> list[InstanceKey]:
        out = []
        for alias in self.aliases:
            with contextlib.suppress(ValueError):
                out.append(InstanceKey.parse(alias))
        return out


def entry_key(key: InstanceKey) -> str:
    """The KV key of an instance in `baton_instances`."""
    return kv_key(str(key))


async def _bucket(js: JetStreamContext) -> KeyValue:
    with bus_errors(f"opening bucket {INSTANCES}"):
        return await js.key_value(INSTANCES)


async def register(
    js: JetStreamContext,
    key: InstanceKey,
    *,
    source: str,
    added_by: str,
    via: InstanceKey | None = None,
    aliases: tuple[InstanceKey, ...] = (),
) -> bool:
    """Add `key` to the registry unless it is there. True if this call created it."""
    entry = RegistryEntry(
        instance=str(key),
        added_at=utcnow(),
        added_by=added_by,
        source=source,
        via=str(via) if via else "",
        aliases=tuple(str(a) for a in aliases),
    )
    kv = await _bucket(js)
    with bus_errors(f"registering {key}"):
        try:
            await kv.create(entry_key(key), entry.model_dump_json().encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
    return True


async def forget(js: JetStreamContext, key: InstanceKey) -> bool:
    """Remove `key` from the registry. True if it was there."""
    kv = await _bucket(js)
    with bus_errors(f"forgetting {key}"):
        try:
            await kv.get(entry_key(key))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return False
        await kv.delete(entry_key(key))
    return True


def _decode(value: bytes | None, kv_name: str) -> RegistryEntry | None:
    try:
        return RegistryEntry.model_validate_json(value or b"")
    except ValidationError:
        log.warning("registry: ignoring undecodable entry %s", kv_name)
        return None


async def read_registry(js: JetStreamContext) -> dict[InstanceKey, RegistryEntry]:
    """Every registered instance now (`kvread.scan`: never a short answer)."""
    out: dict[InstanceKey, RegistryEntry] = {}
    for entry in await kvread.scan(js, INSTANCES):
        decoded = _decode(entry.value, entry.key)
        if decoded is not None:
            with contextlib.suppress(ValueError):
                out[decoded.key] = decoded
    return out


class Registry:
    """A live, in-memory copy of `baton_instances`.

    A KV watcher applies every change as it happens; every `resync_s` (and on `resync()`) the copy is
    rebuilt from a fresh scan and watcher (`kvread.scan_and_watch`), so a watcher silently lost in a
    broker restart heals by itself.
    `on_change()` is called (synchronously) after every applied change.
    """

    def __init__(
        self, js: JetStreamContext, *, on_change: Callable[[], None] | None = None, resync_s: float = 30.0
    ) -> None:
        self.js = js
        self.on_change = on_change
        self.resync_s = resync_s
        self.entries: dict[InstanceKey, RegistryEntry] = {}
        self.aliases: dict[InstanceKey, InstanceKey] = {}
        self.ready = asyncio.Event()
        self._by_kv: dict[str, InstanceKey] = {}
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, key: InstanceKey) -> bool:
        return key in self.entries or key in self.aliases

    def start(self) -> Registry:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="registry watch")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def resync(self) -> None:
        """Rebuild from a fresh watcher soon (e.g. after JetStream came back)."""
        self._kick.set()

    def _rebuild_aliases(self) -> None:
        self.aliases = {
            alias: key for key, entry in self.entries.items() for alias in entry.alias_keys() if alias != key
        }

    def _changed(self) -> None:
        self._rebuild_aliases()
        if self.on_change is not None:
            self.on_change()

    async def _run(self) -> None:
        while True:
            try:
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watch must outlive broker trouble
                log.warning("registry watch failed, retrying: %s", exc)
                await asyncio.sleep(1.0)

    async def _watch_once(self) -> None:
        self._kick.clear()
        entries, watcher = await kvread.scan_and_watch(self.js, INSTANCES)
        fresh: dict[InstanceKey, RegistryEntry] = {}
        by_kv: dict[str, InstanceKey] = {}
        revisions: dict[str, int] = {}  # kv key -> revision applied: the watcher's replay is no change
        for item in entries:
            revisions[item.key] = item.revision
            decoded = _decode(item.value, item.key)
            with contextlib.suppress(ValueError):
                if decoded is not None:
                    fresh[decoded.key] = decoded
                    by_kv[item.key] = decoded.key
        self.entries, self._by_kv = fresh, by_kv
        self.ready.set()
        self._changed()
        loop = asyncio.get_running_loop()
        until = loop.time() + self.resync_s
        try:
            while not self._kick.is_set():
                try:
                    update = await kvscan.next_update(watcher, max(0.05, min(1.0, until - loop.time())))
                except nats.errors.TimeoutError:
                    if loop.time() >= until:
                        return
                    continue
                if update is None:  # the watcher's end-of-initial-values marker: the scan has them
                    continue
                if update.operation in (KV_DEL, KV_PURGE):
                    revisions.pop(update.key, None)
                    gone = self._by_kv.pop(update.key, None)
                    if gone is None:
                        continue
                    self.entries.pop(gone, None)
                else:
                    if revisions.get(update.key) == update.revision:
                        continue  # already in the scan
                    revisions[update.key] = int(update.revision or 0)
                    decoded = _decode(update.value, update.key)
                    if decoded is None:
                        continue
                    try:
                        key = decoded.key
                    except ValueError:
                        continue
                    self.entries[key] = decoded
                    self._by_kv[update.key] = key
                self._changed()
        finally:
            await kvscan.stop(watcher)
