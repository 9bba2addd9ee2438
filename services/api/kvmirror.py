"""A live in-memory copy of a KV bucket (downtime, candidates, settings, masters) for the API's reads.

A watcher applies every change; on any watcher failure the copy is rebuilt from a fresh watcher after
a short pause, so a broker restart heals by itself. Values are kept raw (bytes); callers decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE

from libs.aio import cancel_and_wait

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
        kv = await self.js.key_value(self.bucket)
        watcher = await kv.watchall()
        fresh: dict[str, bytes] = {}
        initial = True
        try:
            while True:
                entry = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call,arg-type]
                if entry is None:  # end of the initial values
                    if initial:
                        self.entries, initial = fresh, False
                        self.version += 1
                        self.ready.set()
                    continue
                target = fresh if initial else self.entries
                if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                    target.pop(entry.key, None)
                else:
                    target[entry.key] = entry.value
                if not initial:
                    self.version += 1
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
