"""Consul adapter for master discovery, on python-consul2.

python-consul2 supplies the endpoint API (`kv.get`, `txn.put`, `status.leader`) and its response
checks; this module supplies the transport and keeps the library's quirks here:
- `consul.aio` opens a new aiohttp session per request, has no timeout and no `close()`, and warns
  "Unclosed connector" from `__del__`. We plug our own transport into python-consul2's
  `http_connect` hook instead: one session per adapter, created lazily inside the running loop,
  a total timeout on every request, and a real `close()`.
- python-consul2 lets the CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN / CONSUL_HTTP_SSL environment variables
  override explicit arguments; Baton's configuration is explicit, so we ignore them.
- `txn.put` raises `ClientError("409 <body>")` when a transaction is rolled back; we parse the body.
The ACL token travels in the `X-Consul-Token` header and never appears in reprs or error messages.

Publishing is one `/v1/txn` per cluster: a check on every key as last read (`check-index` on its
ModifyIndex, or `check-not-exists`), then a `set` of every key, including the epoch key. A
concurrent writer therefore makes our transaction fail as a whole; we re-read and decide again
(newer epoch → `StaleEpoch`), a bounded number of times (`max_attempts`). Keys with no Baton epoch
(written by orchestrator or by hand) count as older than any epoch. Every HTTP call is bounded by
`timeout`, so a publish takes at most 2 * timeout * max_attempts. Transport errors are not retried
here: the caller owns backoff, so one slow data center never delays another.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import warnings
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import consul.base
from pydantic import SecretStr

from libs.errors import KVError, StaleEpoch
from libs.kv.base import PublishedMaster, PublishOutcome, PublishResult
from libs.kv.layout import (
    EPOCH_SUBKEY,
    cluster_alias,
    cluster_master_key,
    cluster_master_kv_pairs,
    epoch_key,
)
from libs.models.events import MasterRecord

T = TypeVar("T")

DEFAULT_PORT = 8500
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_ATTEMPTS = 5


class _Transport(consul.base.HTTPClient):  # type: ignore[misc]
    """python-consul2 transport: one aiohttp session, a total timeout per request."""

    def __init__(self, host: str, port: int, scheme: str, *, timeout: float, verify: bool) -> None:
        super().__init__(host, port, scheme, verify=verify, timeout=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(ssl=bool(self.verify)),
            )
        return self._session

    async def _request(
        self, callback: Any, method: str, uri: str, data: Any = None, headers: Any = None
    ) -> Any:
        async with self._client().request(method, uri, data=data, headers=headers) as resp:
            content = await resp.read()
            response = consul.base.Response(
                resp.status, resp.headers, content.decode("utf-8", "replace"), content
            )
        return callback(response)

    async def get(self, callback: Any, path: str, params: Any = None, headers: Any = None) -> Any:
        return await self._request(callback, "GET", self.uri(path, params), headers=headers)

    async def put(
        self, callback: Any, path: str, params: Any = None, data: Any = "", headers: Any = None
    ) -> Any:
        return await self._request(callback, "PUT", self.uri(path, params), data=data, headers=headers)

    async def delete(
        self, callback: Any, path: str, params: Any = None, data: Any = "", headers: Any = None
    ) -> Any:
        return await self._request(callback, "DELETE", self.uri(path, params), data=data, headers=headers)

    async def post(
        self, callback: Any, path: str, params: Any = None, data: Any = "", headers: Any = None
    ) -> Any:
        return await self._request(callback, "POST", self.uri(path, params), data=data, headers=headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Consul(consul.base.Consul):  # type: ignore[misc]
    """python-consul2's client with our transport and without environment overrides."""

    def __init__(self, transport: _Transport, token: str | None) -> None:
        self._transport = transport
        with warnings.catch_warnings():  # it warns about legacy ACL / discovery-chain APIs we never use
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(host=transport.host, port=transport.port, scheme=transport.scheme)
        self.token = token  # python-consul2 would take CONSUL_HTTP_TOKEN over an explicit token

    def http_connect(self, *args: Any, **kwargs: Any) -> _Transport:
        return self._transport  # ignores CONSUL_HTTP_ADDR / CONSUL_HTTP_SSL* on purpose


def parse_address(address: str, scheme: str = "http") -> tuple[str, str, int]:
    """`host:port`, `[v6]:port`, `host` or `http(s)://host:port` → (scheme, host, port)."""
    text = address.strip()
    if "://" not in text:
        text = f"{scheme}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KVError(f"bad Consul address {address!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise KVError(f"bad Consul address {address!r}: {exc}") from None
    return parts.scheme, parts.hostname, port


class ConsulKVStore:
    """`MasterKVStore` on one data center's Consul agent."""

    def __init__(
        self,
        address: str,
        *,
        datacenter: str,
        token: str | SecretStr | None = None,
        scheme: str = "http",
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        verify_tls: bool = True,
    ) -> None:
        scheme, host, port = parse_address(address, scheme)
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        url_host = f"[{host}]" if ":" in host else host
        self._datacenter = datacenter
        self._where = f"consul {datacenter} at {scheme}://{url_host}:{port}"
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._transport = _Transport(url_host, port, scheme, timeout=timeout, verify=verify_tls)
        self._consul = _Consul(self._transport, secret or None)

    def __repr__(self) -> str:
        return f"ConsulKVStore({self._where})"

    @property
    def datacenter(self) -> str:
        return self._datacenter

    async def close(self) -> None:
        await self._transport.close()

    async def leader(self) -> str:
        """The raft leader's address, as `/v1/status/leader` reports it (a liveness check)."""
        leader = await self._call("status", self._consul.status.leader())
        return str(leader)

    # ---- reading -------------------------------------------------------------------------------

    async def _read_entries(self, prefix: str, alias: str) -> dict[str, tuple[str, int]]:
        """Every existing layout key of `alias` → (value, ModifyIndex), from one recursive read."""
        main = cluster_master_key(prefix, alias)
        _, data = await self._call(f"read {main}", self._consul.kv.get(main, recurse=True))
        found: dict[str, tuple[str, int]] = {}
        for item in data or []:
            key = item["Key"]
            if key == main or key.startswith(main + "/"):
                raw = item.get("Value")
                value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
                found[key] = (value, int(item["ModifyIndex"]))
        return found

    def _view(self, prefix: str, alias: str, found: dict[str, tuple[str, int]]) -> PublishedMaster | None:
        main = cluster_master_key(prefix, alias)
        fence = epoch_key(prefix, alias)
        if main not in found and fence not in found:
            return None
        epoch: int | None = None
        if fence in found:
            text = found[fence][0].strip()
            if not text.isdigit():
                raise KVError(f"{self._where}: {fence} holds {text!r}, not an epoch; refusing to write")
            epoch = int(text)
        subkeys = {k[len(main) + 1 :]: v for k, (v, _) in found.items() if k.startswith(main + "/")}
        return PublishedMaster(
            alias=alias,
            key=main,
            value=found[main][0] if main in found else None,
            subkeys=subkeys,
            epoch=epoch,
            index=found[fence][1] if fence in found else 0,
        )

    async def read_cluster(self, prefix: str, alias: str) -> PublishedMaster | None:
        return self._view(prefix, alias, await self._read_entries(prefix, alias))

    # ---- publishing ----------------------------------------------------------------------------

    async def publish_master(self, record: MasterRecord, prefix: str) -> PublishResult:
        try:
            alias = cluster_alias(record)
            pairs = cluster_master_kv_pairs(record, prefix)
        except ValueError as exc:
            raise KVError(f"{self._where}: cannot publish cluster {record.cluster!r}: {exc}") from None
        main, fence = cluster_master_key(prefix, alias), epoch_key(prefix, alias)
        for attempt in range(1, self._max_attempts + 1):
            found = await self._read_entries(prefix, alias)
            current = self._view(prefix, alias, found)
            previous_value = current.value if current else None
            previous_epoch = current.epoch if current else None
            if previous_epoch is not None and previous_epoch > record.epoch:
                raise StaleEpoch(
                    f"{self._where}: {main} is held by epoch {previous_epoch} ({previous_value}); "
                    f"refusing {pairs[main]} from older epoch {record.epoch}"
                )
            if all(found.get(k, (None, 0))[0] == v for k, v in pairs.items()):
                return PublishResult(
                    outcome=PublishOutcome.UNCHANGED,
                    key=main,
                    value=pairs[main],
                    epoch=record.epoch,
                    index=found[fence][1],
                    previous_value=previous_value,
                    previous_epoch=previous_epoch,
                    attempts=attempt,
                )
            ops = [_check_op(k, found.get(k)) for k in pairs]
            ops += [{"KV": {"Verb": "set", "Key": k, "Value": _b64(v)}} for k, v in pairs.items()]
            committed, body = await self._txn(ops, checks=len(pairs))
            if committed:
                index = max(
                    (
                        int(r["KV"]["ModifyIndex"])
                        for r in body.get("Results") or []
                        if r["KV"]["Key"] == fence
                    ),
                    default=0,
                )
                return PublishResult(
                    outcome=PublishOutcome.WRITTEN,
                    key=main,
                    value=pairs[main],
                    epoch=record.epoch,
                    index=index,
                    previous_value=previous_value,
                    previous_epoch=previous_epoch,
                    attempts=attempt,
                )
            await asyncio.sleep(random.uniform(0, 0.01 * attempt))  # lost a race: re-read and decide
        raise KVError(
            f"{self._where}: {main} kept changing under us; gave up after {self._max_attempts} tries"
        )

    async def _txn(self, ops: list[dict[str, Any]], *, checks: int) -> tuple[bool, dict[str, Any]]:
        """(True, body) if committed; (False, body) if rolled back by one of the first `checks` ops."""
        try:
            body = await self._call("transaction", self._consul.txn.put(ops))
        except _RolledBack as exc:
            errors = exc.body.get("Errors") or []
            whats = "; ".join(str(e.get("What")) for e in errors)
            if any("Permission denied" in str(e.get("What")) for e in errors):
                raise KVError(f"{self._where}: transaction refused by ACL: {whats}") from None
            if errors and all(int(e.get("OpIndex", -1)) < checks for e in errors):
                return False, exc.body
            raise KVError(f"{self._where}: transaction rolled back: {whats}") from None
        return True, body if isinstance(body, dict) else {}

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """Await one python-consul2 call within the timeout; translate failures into KVError."""
        where = f"{self._where}: {what}"
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except consul.base.ClientError as exc:
            text = str(exc)
            body = _json_body(text[4:]) if text.startswith("409 ") else None
            if body is not None:
                raise _RolledBack(body) from None
            raise KVError(f"{where} failed: {text[:200]}") from None
        except consul.base.ACLPermissionDenied as exc:
            raise KVError(f"{where} denied by ACL ({str(exc)[:100] or 'no reason given'})") from None
        except (TimeoutError, consul.base.Timeout):
            raise KVError(f"{where}: no answer within {self._timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error)
            raise KVError(f"{where}: cannot connect ({reason})") from None
        except aiohttp.ClientError as exc:
            raise KVError(f"{where}: {type(exc).__name__}: {exc}") from None
        except consul.base.ConsulException as exc:
            raise KVError(f"{where} failed: {str(exc)[:200]}") from None


class _RolledBack(Exception):
    """A transaction answered 409; `body` is Consul's {"Results": null, "Errors": [...]}."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("transaction rolled back")
        self.body = body


def _json_body(text: str) -> dict[str, Any] | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _check_op(key: str, seen: tuple[str, int] | None) -> dict[str, Any]:
    if seen is None:
        return {"KV": {"Verb": "check-not-exists", "Key": key}}
    return {"KV": {"Verb": "check-index", "Key": key, "Index": seen[1]}}


__all__ = ["EPOCH_SUBKEY", "ConsulKVStore", "parse_address"]
