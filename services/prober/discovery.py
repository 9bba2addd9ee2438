"""Discovery: after each successful probe, register the instances it points at.

A snapshot names its master (upward) and its replicas (downward: SHOW SLAVE HOSTS with
DiscoverByShowSlaveHosts, else the binlog dump threads of the processlist). Those not yet in the registry
are added with `kv.create` (first writer wins; "already there" is fine), so following masters up and
replicas down from any one instance finds its whole topology, and a replica that appears later is found
at the master's next probe. The check against the in-memory registry costs nothing per probe; KV is
touched only for names that are new, at most once per `retry_s` per name.

Renames (an instance whose canonical name, per MySQLHostnameResolveMethod, differs from the name it was
registered under) are carried out here too: register the canonical key with the old name as an alias,
then delete the old entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from nats.js import JetStreamContext

from libs.aio import cancel_all
from libs.discovery import registry as reg
from libs.discovery.names import Names
from libs.errors import BusError
from libs.models import InstanceKey, InstanceSnapshot
from libs.topology.naming import IgnoreFilters, discovery_candidates

log = logging.getLogger(__name__)


class Discovery:
    def __init__(
        self,
        js: JetStreamContext,
        registry: reg.Registry,
        names: Names,
        *,
        worker: str,
        ignore: IgnoreFilters,
        retry_s: float = 10.0,
    ) -> None:
        self.js = js
        self.registry = registry
        self.names = names
        self.worker = worker
        self.ignore = ignore
        self.retry_s = retry_s
        self.registered = 0  # entries this worker created (tests and metrics read it)
        self._tried: dict[InstanceKey, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _fresh(self, key: InstanceKey) -> bool:
        """True if `key` is unknown and was not tried recently."""
        if key in self.registry:
            return False
        tried = self._tried.get(key)
        return tried is None or time.monotonic() - tried > self.retry_s

    def observe(self, snapshot: InstanceSnapshot) -> None:
        """Look at a snapshot (synchronously, cheaply); register what is new in the background."""
        candidates = discovery_candidates(snapshot, self.ignore)
        if not candidates:
            return
        new: list[InstanceKey] = []
        unresolved: list[InstanceKey] = []
        for key in candidates:
            resolved = self.names.resolve_cached(key)
            if resolved is None:
                unresolved.append(key)
            elif resolved != snapshot.key and self._fresh(resolved):
                new.append(resolved)
        if new or unresolved:
            for key in new:
                self._tried[key] = time.monotonic()
            self._spawn(self._register(new, unresolved, via=snapshot.key))

    def rename(self, old: InstanceKey, new: InstanceKey) -> None:
        self._spawn(self._rename(old, new))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _register(
        self, keys: list[InstanceKey], unresolved: list[InstanceKey], via: InstanceKey
    ) -> None:
        for key in unresolved:
            resolved = await self.names.resolve(key)
            if resolved != via and self._fresh(resolved):
                self._tried[resolved] = time.monotonic()
                keys.append(resolved)
        for key in keys:
            try:
                if await reg.register(self.js, key, source="discovered", added_by=self.worker, via=via):
                    self.registered += 1
                    log.info("discovered %s (via %s)", key, via)
            except BusError as exc:
                log.warning("could not register %s: %s", key, exc)

    async def _rename(self, old: InstanceKey, new: InstanceKey) -> None:
        try:
            await reg.register(self.js, new, source="resolved", added_by=self.worker, via=old, aliases=(old,))
            await reg.forget(self.js, old)
        except BusError as exc:
            log.warning("could not rename %s to %s: %s", old, new, exc)

    async def stop(self) -> None:
        await cancel_all(list(self._tasks))
