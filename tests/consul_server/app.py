"""aiohttp handlers speaking the subset of Consul's HTTP API that Baton and its tests use.

Endpoints: `GET|PUT|DELETE /v1/kv/<key>`, `PUT /v1/txn`, `GET /v1/status/leader|peers`,
`GET /v1/agent/self`. Status codes, bodies and headers follow Consul's documentation and source
(agent/kvs_endpoint.go, agent/txn_endpoint.go, agent/consul/txn_endpoint.go):
- KV reads answer a JSON array of DirEntries (404 when nothing matches) with `X-Consul-Index`;
  `?index=N&wait=D` blocks until the watched key/prefix changes or D (+ up to D/16 jitter) passes;
  wait defaults to 5m and is capped at 10m;
- KV writes answer `true`/`false`;
- `/v1/txn` answers 200 `{"Results": [...], "Errors": null}` or 409 `{"Results": null, "Errors": [...]}`;
  more than `max_txn_ops` operations is 413, an unparsable body 400;
- ACLs (when a token is configured): an unknown token is 403 "ACL not found"; a token without the
  needed right is 403 "Permission denied" on /v1/kv, and a per-operation "Permission denied" error
  (409) inside a transaction, as Consul's Txn.Apply pre-check does;
- `?dc=` naming another datacenter is 500 "No path to datacenter".
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.consul_server.store import KVOp, KVStore

MAX_VALUE_SIZE = 512 * 1024
DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Parse a Go duration ("10s", "1m30s", "250ms") into seconds. Raises ValueError on nonsense."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


@dataclass
class ServerConfig:
    """How one test datacenter behaves. `acl_token` set → ACLs on, default deny."""

    datacenter: str = "dc1"
    acl_token: str | None = None  # full read/write
    read_token: str | None = None  # read-only
    max_txn_ops: int = 64
    node_name: str = "baton-test-consul"
    extra: dict[str, Any] = field(default_factory=dict)


class _Denied(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class ConsulApp:
    """Builds the aiohttp application around one `KVStore`."""

    def __init__(self, store: KVStore, config: ServerConfig) -> None:
        self.store = store
        self.config = config

    def build(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("GET", "/v1/kv/{key:.*}", self.kv_get)
        app.router.add_route("PUT", "/v1/kv/{key:.*}", self.kv_put)
        app.router.add_route("DELETE", "/v1/kv/{key:.*}", self.kv_delete)
        app.router.add_route("PUT", "/v1/txn", self.txn)
        app.router.add_route("GET", "/v1/status/leader", self.status_leader)
        app.router.add_route("GET", "/v1/status/peers", self.status_peers)
        app.router.add_route("GET", "/v1/agent/self", self.agent_self)
        return app

    # ---- helpers -------------------------------------------------------------------------------

    def _rights(self, request: web.Request) -> tuple[bool, bool]:
        """(may_read, may_write) for the request's token. Raises _Denied for an unknown token."""
        if self.config.acl_token is None:
            return True, True
        token = request.headers.get("X-Consul-Token") or request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if not token and auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        if not token:
            return False, False  # the anonymous token: default deny
        if token == self.config.acl_token:
            return True, True
        if self.config.read_token is not None and token == self.config.read_token:
            return True, False
        raise _Denied(403, "ACL not found")

    def _check_dc(self, request: web.Request) -> None:
        dc = request.query.get("dc")
        if dc and dc != self.config.datacenter:
            raise _Denied(500, "No path to datacenter")

    def _meta_headers(self, index: int) -> dict[str, str]:
        return {"X-Consul-Index": str(index), "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )

    # ---- /v1/kv --------------------------------------------------------------------------------

    async def kv_get(self, request: web.Request) -> web.StreamResponse:
        try:
            self._check_dc(request)
            may_read, _ = self._rights(request)
        except _Denied as exc:
            return web.Response(status=exc.status, text=exc.text)
        key = request.match_info["key"]
        keys_only = "keys" in request.query
        prefix = keys_only or "recurse" in request.query
        if not may_read and not prefix:
            return web.Response(status=403, text="Permission denied")
        try:
            min_index = int(request.query.get("index", "0"))
            wait = parse_go_duration(request.query["wait"]) if "wait" in request.query else DEFAULT_WAIT
        except ValueError:
            return web.Response(status=400, text="Invalid index or wait")
        if min_index > 0:
            await self._block(
                key, prefix=prefix, min_index=min_index, wait=min(wait, MAX_WAIT) or DEFAULT_WAIT
            )
        index = self.store.prefix_index(key) if prefix else self.store.table_index()
        headers = self._meta_headers(index)
        if prefix and not may_read:  # Consul filters what the token may not read
            headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
            return web.Response(status=404, headers=headers)
        if keys_only:
            separator = request.query.get("separator", "")
            found: list[str] = []
            for entry in self.store.list_prefix(key):
                name = entry.key
                if separator:
                    cut = name.find(separator, len(key))
                    if cut >= 0:
                        name = name[: cut + len(separator)]
                if not found or found[-1] != name:
                    found.append(name)
            if not found:
                return web.Response(status=404, headers=headers)
            return self._json(found, headers=headers)
        entries = (
            self.store.list_prefix(key) if prefix else [e for e in [self.store.get(key)] if e is not None]
        )
        if not entries:
            return web.Response(status=404, headers=headers)
        if "raw" in request.query and not prefix:
            return web.Response(body=entries[0].value or b"", headers=headers, content_type="text/plain")
        return self._json([e.to_json() for e in entries], headers=headers)

    async def _block(self, key: str, *, prefix: bool, min_index: int, wait: float) -> None:
        """Consul's blocking loop: answer at once if the index already passed, else on the next change."""
        current = self.store.prefix_index(key) if prefix else self.store.table_index()
        if current > min_index:
            return
        deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
        start = self.store.relevant_index(key, prefix=prefix)
        while (remaining := deadline - time.monotonic()) > 0:
            await self.store.wait_for_change(remaining)
            if self.store.relevant_index(key, prefix=prefix) > start:
                return

    async def kv_put(self, request: web.Request) -> web.Response:
        try:
            self._check_dc(request)
            _, may_write = self._rights(request)
        except _Denied as exc:
            return web.Response(status=exc.status, text=exc.text)
        if not may_write:
            return web.Response(status=403, text="Permission denied")
        key = request.match_info["key"]
        if not key:
            return web.Response(status=400, text="Missing key name")
        if "acquire" in request.query or "release" in request.query:
            return web.Response(status=400, text="sessions are not supported by the test Consul server")
        body = await request.read()
        if len(body) > MAX_VALUE_SIZE:
            return web.Response(status=413, text=f"Request body too large, max size: {MAX_VALUE_SIZE} bytes")
        try:
            flags = int(request.query.get("flags", "0"))
            cas = int(request.query["cas"]) if "cas" in request.query else None
        except ValueError:
            return web.Response(status=400, text="Invalid flags or cas index")
        op = KVOp("set", key, body, flags) if cas is None else KVOp("cas", key, body, flags, index=cas)
        outcome = self.store.apply([op])
        return self._json(outcome.ok)

    async def kv_delete(self, request: web.Request) -> web.Response:
        try:
            self._check_dc(request)
            _, may_write = self._rights(request)
        except _Denied as exc:
            return web.Response(status=exc.status, text=exc.text)
        if not may_write:
            return web.Response(status=403, text="Permission denied")
        key = request.match_info["key"]
        if "recurse" in request.query:
            op = KVOp("delete-tree", key)
        elif "cas" in request.query:
            try:
                op = KVOp("delete-cas", key, index=int(request.query["cas"]))
            except ValueError:
                return web.Response(status=400, text="Invalid cas index")
        else:
            op = KVOp("delete", key)
        outcome = self.store.apply([op])
        return self._json(outcome.ok)

    # ---- /v1/txn -------------------------------------------------------------------------------

    async def txn(self, request: web.Request) -> web.Response:
        try:
            self._check_dc(request)
            may_read, may_write = self._rights(request)
        except _Denied as exc:
            return web.Response(status=exc.status, text=exc.text)
        try:
            raw_ops = json.loads(await request.read())
            if not isinstance(raw_ops, list):
                raise ValueError("expected a JSON array of operations")
        except ValueError as exc:
            return web.Response(status=400, text=f"Failed to parse body: {exc}")
        if len(raw_ops) > self.config.max_txn_ops:
            return web.Response(
                status=413,
                text=f"Transaction contains too many operations ({len(raw_ops)} > {self.config.max_txn_ops})",
            )
        ops: list[KVOp] = []
        for raw in raw_ops:
            try:
                ops.append(_decode_op(raw))
            except ValueError as exc:
                return web.Response(status=400, text=f"Failed to parse body: {exc}")
            if ops[-1].value is not None and len(ops[-1].value or b"") > MAX_VALUE_SIZE:
                return web.Response(status=413, text=f'Value for key "{ops[-1].key}" is too large')
        denied = [
            {"OpIndex": i, "What": "Permission denied"}
            for i, op in enumerate(ops)
            if not (may_write if op.is_write else may_read)
        ]
        if denied:  # Txn.Apply's pre-check: no raft index is consumed
            return self._json({"Results": None, "Errors": denied}, status=409)
        outcome = self.store.apply(ops)
        status = 200 if outcome.ok else 409
        headers = None if any(op.is_write for op in ops) else self._meta_headers(self.store.table_index())
        return self._json({"Results": outcome.results, "Errors": outcome.errors}, status, headers)

    # ---- status / agent ------------------------------------------------------------------------

    async def status_leader(self, request: web.Request) -> web.Response:
        return self._json(f"{request.host.rsplit(':', 1)[0]}:8300")

    async def status_peers(self, request: web.Request) -> web.Response:
        return self._json([f"{request.host.rsplit(':', 1)[0]}:8300"])

    async def agent_self(self, request: web.Request) -> web.Response:
        try:
            self._rights(request)
        except _Denied as exc:
            return web.Response(status=exc.status, text=exc.text)
        cfg = self.config
        body = {
            "Config": {
                "Datacenter": cfg.datacenter,
                "NodeName": cfg.node_name,
                "Server": True,
                "Version": "1.17.0-baton-test",
            },
            "Member": {"Name": cfg.node_name, "Tags": {"dc": cfg.datacenter, "role": "consul"}},
            **cfg.extra,
        }
        return self._json(body)


def _decode_op(raw: Any) -> KVOp:
    if not isinstance(raw, dict):
        raise ValueError("each operation must be a JSON object")
    kv = next((v for k, v in raw.items() if k.lower() == "kv"), None)
    if not isinstance(kv, dict):
        raise ValueError("the test Consul server supports only KV operations")
    fields = {k.lower(): v for k, v in kv.items()}
    value_text = fields.get("value")
    value: bytes | None = None
    if value_text is not None:
        if not isinstance(value_text, str):
            raise ValueError(f"unexpected value type: {type(value_text).__name__}")
        try:
            value = base64.b64decode(value_text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"failed to decode value: {exc}") from exc
    flags = fields.get("flags") or 0
    index = fields.get("index") or 0
    if not isinstance(flags, int) or not isinstance(index, int) or flags < 0 or index < 0:
        raise ValueError("Flags and Index must be unsigned integers")
    return KVOp(
        verb=str(fields.get("verb", "")),
        key=str(fields.get("key", "")),
        value=value,
        flags=flags,
        index=index,
        session=str(fields.get("session") or ""),
    )
