"""Typed helpers around nats-py's KV watcher (its methods are untyped).

Reading a whole bucket is `libs.bus.kvread.scan` (not a watcher: a watcher's end-of-initial-values
marker can arrive before the values, see there); live copies start from `kvread.scan_and_watch`.
"""

from __future__ import annotations

import contextlib

import nats.errors
from nats.js.kv import KeyValue


async def next_update(watcher: KeyValue.KeyWatcher, wait_s: float) -> KeyValue.Entry | None:
    """The watcher's next entry (None is its end-of-initial-values marker). Raises nats TimeoutError."""
    entry: KeyValue.Entry | None = await watcher.updates(timeout=wait_s)  # type: ignore[no-untyped-call]
    return entry


async def stop(watcher: KeyValue.KeyWatcher) -> None:
    with contextlib.suppress(nats.errors.Error, AttributeError):
        await watcher.stop()  # type: ignore[no-untyped-call]
