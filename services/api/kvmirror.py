"""A live in-memory copy of a KV bucket (downtime, candidates, settings, masters) for the API's reads.

The copy starts from `kvread.scan` (never a short answer: the watcher's own end-of-initial-values
marker can come before the values, and the API would answer "no downtime" meanwhile); a watcher
started after the scan then applies every change. On any failure the copy is rebuilt the same way
after a short pause, so a broker restart heals by itself. Values are kept raw (bytes); callers decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE

from libs.aio import cancel_and_wait
from libs.bus import kvread

log = logging.getLogger(__name__)


class KVMirror:
    def __init__(self, js: JetStreamContext, bucket: str, *, retry_s: float = 1.0) -> None:
        self.js = js
        self.bucket = bucket
        self.retry_s = retry_s
        self.entries: dict[str, bytes] = {}
        self.version = 0  # bumped on every applied change
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> KVMirror:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"kv mirror {self.bucket}")
        return self

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def apply(self, key: str, value: bytes | None) -> None:
        """Apply a change now (the API's own writes show at once, before the watcher echoes them)."""
        if value is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = value
        self.version += 1

    async def _run(self) -> None:
        while True:
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the mirror must outlive broker trouble
                log.warning("kv mirror %s: watch failed, retrying: %s", self.bucket, exc)
            await asyncio.sleep(self.retry_s)

    async def _watch(self) -> None:
        entries, watcher = await kvread.scan_and_watch(self.js, self.bucket)
        try:
            self.entries = {e.key: e.value for e in entries}
            self.version += 1
            self.ready.set()
            while True:
                entry = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call,arg-type]
                if entry is None:  # the watcher's end-of-initial-values marker: the scan has them
                    continue
                if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                    self.entries.pop(entry.key, None)
                else:
                    self.entries[entry.key] = entry.value
                self.version += 1
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
