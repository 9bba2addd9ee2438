"""The KV state machine of the test Consul: entries, one raft index, transactions, persistence.

Semantics follow Consul's state store (agent/consul/state/kvs.go, txn.go):
- every write request consumes one new raft index; every entry a request changes gets that index as
  its ModifyIndex (so all operations of one transaction share one index);
- a `set` that changes neither value nor flags leaves the entry (and its ModifyIndex) alone;
- `cas` with index 0 creates only; with N it writes only if the key exists with ModifyIndex N;
- `delete-cas` of a missing key succeeds (there is nothing to delete);
- a transaction applies all of its operations or none, reports every failing operation, and later
  operations see the effects of earlier ones;
- deletes leave a tombstone index per key, so a blocking query on a prefix wakes on deletion and the
  index of a prefix never slides backwards.
Empty values are stored as None and read back as `null`, as Consul does.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

WRITE_VERBS = frozenset({"set", "cas", "delete", "delete-cas", "delete-tree", "lock", "unlock"})
READ_VERBS = frozenset(
    {"get", "get-or-empty", "get-tree", "check-index", "check-session", "check-not-exists"}
)


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0

    def to_json(self, *, with_value: bool = True) -> dict[str, Any]:
        """Consul's DirEntry shape; `Value` is base64, or null when empty or left out."""
        value = base64.b64encode(self.value).decode() if with_value and self.value else None
        return {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": value,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass(frozen=True)
class KVOp:
    """One KV operation, as in a `/v1/txn` body (Value already base64-decoded)."""

    verb: str
    key: str
    value: bytes | None = None
    flags: int = 0
    index: int = 0
    session: str = ""

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS


class OpFailed(Exception):
    """One operation of a transaction failed; the message is Consul's `What`."""


@dataclass(frozen=True)
class TxnOutcome:
    results: list[dict[str, Any]] | None
    errors: list[dict[str, Any]] | None

    @property
    def ok(self) -> bool:
        return not self.errors


class KVStore:
    """All KV data of one test datacenter. Methods are synchronous, so each call is atomic on the loop."""

    def __init__(self, state_file: Path | None = None) -> None:
        # A real Consul's raft log never starts at 1 (bootstrap entries come first). Starting above 1
        # keeps the first KV write's index above the `X-Consul-Index: 1` an absent key answers with, so
        # a blocking query sent before that write is woken by it.
        self.raft_index = 10
        self.entries: dict[str, Entry] = {}
        self.touched: dict[str, int] = {}  # key -> last index it was written or deleted at
        self._state_file = state_file
        self._changed: asyncio.Event | None = None
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def list_prefix(self, prefix: str) -> list[Entry]:
        return [self.entries[k] for k in sorted(self.entries) if k.startswith(prefix)]

    def table_index(self) -> int:
        """X-Consul-Index of a single-key read: the highest index of any KV change (never below 1)."""
        return max(1, max(self.touched.values(), default=0))

    def prefix_index(self, prefix: str) -> int:
        """X-Consul-Index of a prefix read: highest change (or tombstone) under it, else the table index."""
        best = max((i for k, i in self.touched.items() if k.startswith(prefix)), default=0)
        return best if best > 0 else self.table_index()

    def relevant_index(self, key: str, *, prefix: bool) -> int:
        """Index of the last change a blocking query on `key` watches (0 if never touched)."""
        if not prefix:
            return self.touched.get(key, 0)
        return max((i for k, i in self.touched.items() if k.startswith(key)), default=0)

    async def wait_for_change(self, timeout: float) -> None:
        """Return after the next committed KV change, or after `timeout` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return

    # ---- writes --------------------------------------------------------------------------------

    def apply(self, ops: Iterable[KVOp]) -> TxnOutcome:
        """Run `ops` as one transaction: all of them, or (with errors listed) none of them."""
        op_list = list(ops)
        write = any(op.is_write for op in op_list)
        idx = self.raft_index + 1 if write else 0
        if write:
            self.raft_index = idx  # the raft entry is consumed even if the FSM rolls back
        overlay: dict[str, Entry | None] = {}
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for i, op in enumerate(op_list):
            try:
                results.extend({"KV": entry} for entry in self._apply_one(op, idx, overlay))
            except OpFailed as exc:
                errors.append({"OpIndex": i, "What": str(exc)})
        if errors:
            return TxnOutcome(results=None, errors=errors)
        if write:
            self._commit(overlay, idx)
        return TxnOutcome(results=results, errors=None)

    def _current(self, key: str, overlay: dict[str, Entry | None]) -> Entry | None:
        return overlay[key] if key in overlay else self.entries.get(key)

    def _tree(self, prefix: str, overlay: dict[str, Entry | None]) -> list[Entry]:
        keys = {k for k in self.entries if k.startswith(prefix)} | {
            k for k in overlay if k.startswith(prefix)
        }
        found = (self._current(k, overlay) for k in sorted(keys))
        return [e for e in found if e is not None]

    def _set(self, op: KVOp, idx: int, overlay: dict[str, Entry | None]) -> Entry:
        existing = self._current(op.key, overlay)
        value = op.value or None
        if existing is not None and existing.value == value and existing.flags == op.flags:
            return existing  # Consul skips unchanged writes: ModifyIndex stays
        create = existing.create_index if existing is not None else idx
        lock = existing.lock_index if existing is not None else 0
        entry = Entry(op.key, value, op.flags, create, idx, lock)
        overlay[op.key] = entry
        return entry

    def _apply_one(self, op: KVOp, idx: int, overlay: dict[str, Entry | None]) -> list[dict[str, Any]]:
        key = op.key
        existing = self._current(key, overlay)
        verb = op.verb
        if verb == "set":
            return [self._set(op, idx, overlay).to_json(with_value=False)]
        if verb == "cas":
            if (op.index == 0 and existing is not None) or (
                op.index != 0 and (existing is None or existing.modify_index != op.index)
            ):
                raise OpFailed(f'failed to set key "{key}", index is stale')
            return [self._set(op, idx, overlay).to_json(with_value=False)]
        if verb == "get":
            if existing is None:
                raise OpFailed(f'key "{key}" doesn\'t exist')
            return [existing.to_json()]
        if verb == "get-or-empty":
            entry = existing or Entry(key, None, op.flags, 0, op.index)
            return [entry.to_json()]
        if verb == "get-tree":
            return [e.to_json() for e in self._tree(key, overlay)]
        if verb == "check-index":
            if existing is None:
                raise OpFailed(f'failed to check index, key "{key}" doesn\'t exist')
            if existing.modify_index != op.index:
                raise OpFailed(
                    f'failed index check for key "{key}", current modify index '
                    f"{existing.modify_index} != {op.index}"
                )
            return [existing.to_json(with_value=False)]
        if verb == "check-session":
            if existing is None:
                raise OpFailed(f'failed to check session, key "{key}" doesn\'t exist')
            if op.session != "":
                raise OpFailed(f'failed session check for key "{key}", current session "" != "{op.session}"')
            return [existing.to_json(with_value=False)]
        if verb == "check-not-exists":
            if existing is not None:
                raise OpFailed(f'key "{key}" exists')
            return []
        if verb == "delete":
            if existing is not None:
                overlay[key] = None
            return []
        if verb == "delete-cas":
            if existing is not None:
                if existing.modify_index != op.index:
                    raise OpFailed(f'failed to delete key "{key}", index is stale')
                overlay[key] = None
            return []
        if verb == "delete-tree":
            for entry in self._tree(key, overlay):
                overlay[entry.key] = None
            return []
        if verb in ("lock", "unlock"):
            raise OpFailed("sessions are not supported by the test Consul server")
        raise OpFailed(f'unknown KV verb "{verb}"')

    def _commit(self, overlay: dict[str, Entry | None], idx: int) -> None:
        changed = False
        for key, entry in overlay.items():
            if entry is None:
                if self.entries.pop(key, None) is not None:
                    self.touched[key] = idx
                    changed = True
            elif entry.modify_index == idx:
                self.entries[key] = entry
                self.touched[key] = idx
                changed = True
        self._persist()
        if changed and self._changed is not None:
            self._changed.set()
            self._changed = None

    # ---- persistence ---------------------------------------------------------------------------

    def _persist(self) -> None:
        """Write the whole state atomically (small test data sets), so a SIGKILL loses nothing."""
        if self._state_file is None:
            return
        doc = {
            "raft_index": self.raft_index,
            "touched": self.touched,
            "entries": [
                {
                    "key": e.key,
                    "value": base64.b64encode(e.value).decode() if e.value else None,
                    "flags": e.flags,
                    "create_index": e.create_index,
                    "modify_index": e.modify_index,
                    "lock_index": e.lock_index,
                }
                for e in self.entries.values()
            ],
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self._state_file)

    def _load(self, path: Path) -> None:
        doc = json.loads(path.read_text())
        self.raft_index = int(doc["raft_index"])
        self.touched = {str(k): int(v) for k, v in doc["touched"].items()}
        for raw in doc["entries"]:
            value = base64.b64decode(raw["value"]) if raw["value"] else None
            entry = Entry(
                raw["key"], value, raw["flags"], raw["create_index"], raw["modify_index"], raw["lock_index"]
            )
            self.entries[entry.key] = entry

    def snapshot(self) -> dict[str, Entry]:
        """A copy of all entries, for tests that assert 'nothing changed'."""
        return {k: replace(v) for k, v in self.entries.items()}
