"""Typed helpers around nats-py's KV watcher (its methods are untyped).

The watcher is used instead of `kv.get`/`kv.keys` because it understands the server's TTL-expiry
markers (`Nats-Marker-Reason`): an expired lease reads as deleted, never as a live value.
"""

from __future__ import annotations

import contextlib

import nats.errors
from nats.js.kv import KeyValue


async def next_update(watcher: KeyValue.KeyWatcher, wait_s: float) -> KeyValue.Entry | None:
    """The watcher's next entry; None marks the end of the initial values. Raises nats TimeoutError."""
    entry: KeyValue.Entry | None = await watcher.updates(timeout=wait_s)  # type: ignore[no-untyped-call]
    return entry


async def stop(watcher: KeyValue.KeyWatcher) -> None:
    with contextlib.suppress(nats.errors.Error, AttributeError):
        await watcher.stop()  # type: ignore[no-untyped-call]


async def scan(kv: KeyValue, *, wait_s: float = 5.0) -> list[KeyValue.Entry]:
    """Every live entry of the bucket now (one ordered-consumer pass; deletes and expiries skipped)."""
    watcher = await kv.watchall(ignore_deletes=True)
    out: list[KeyValue.Entry] = []
    try:
        while True:
            entry = await next_update(watcher, wait_s)
            if entry is None:
                return out
            out.append(entry)
    finally:
        await stop(watcher)
