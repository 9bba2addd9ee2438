"""One pooled asyncmy connection per instance, and the credentials and settings used to open it.

Why one connection per instance: a probe is a single multi-statement round trip, so more connections buy
nothing but server threads; probes of one instance are serialized by the slot's lock. A connection that
failed at the transport level (client errno >= 2000, timeout, cancellation) is closed and re-opened by the
next user, so a restarted server is picked up without anyone noticing. Server-side SQL errors (errno <
2000) leave the connection in place.

TLS: `Credentials.tls` (a `MySQLTLS`, mapped from orchestrator's `MySQLTopologySSL*` keys by
libs.config.derive) makes every connection opened with those credentials a TLS one; a client
certificate is part of how the user authenticates (`REQUIRE X509`), which is why it travels with the
user and password rather than with the pool.

Before a pooled connection is handed out it is checked: one the event loop already knows is dead (closed,
or the server closed or reset it while it sat idle: restart, KILL, wait_timeout) is re-opened, with no
round trip; a pool built with `verify_idle_s` also pings one idle that long (a connection silently dropped
by a firewall only shows on a round trip). `ConnectionPool.run` is the one retry rule: work that failed
because the pooled connection was already dead runs once more on a fresh connection, when it is safe to.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncmy  # type: ignore[import-untyped]
from asyncmy.constants import CLIENT  # type: ignore[import-untyped]
from asyncmy.cursors import DictCursor  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from libs.models import InstanceKey
from libs.mysql.dialect import Dialect, dialect_for
from libs.tls import TLSFileError, client_context

CR_CONN_HOST_ERROR = 2003  # can't connect (refused, unreachable, connect timeout)
CR_SERVER_GONE = 2006  # server has gone away (the connection was dead before the statement was sent)
CR_SERVER_LOST = 2013  # lost connection during query (incl. read timeout)
ER_ACCESS_DENIED = 1045
STALE_CONNECTION_ERRORS = (CR_SERVER_GONE, CR_SERVER_LOST)

Row = dict[str, Any]
T = TypeVar("T")


class MySQLTLS(BaseModel):
    """TLS towards MySQL servers (orchestrator's Go client semantics): the server certificate is verified
    against `ca_file` (the system CAs when empty), hostname included, unless `skip_verify`; the client
    certificate is presented when `cert_file` (with `key_file`) is set. `context()` raises
    libs.tls.TLSFileError naming the file it could not use."""

    model_config = ConfigDict(frozen=True)

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    skip_verify: bool = False

    def context(self) -> ssl.SSLContext:
        """The client SSLContext, built once per distinct settings and shared by every connection (a
        renewed certificate file is read at the next start)."""
        return _tls_context(self)


@functools.lru_cache(maxsize=16)
def _tls_context(tls: MySQLTLS) -> ssl.SSLContext:
    return client_context(tls.ca_file, tls.cert_file, tls.key_file, skip_verify=tls.skip_verify)


class Credentials(BaseModel):
    """A MySQL user. The password is a SecretStr: it prints as `**********` in reprs and logs.

    `tls`: connect with TLS (and the client certificate it names); None: plaintext."""

    model_config = ConfigDict(frozen=True)

    user: str = Field(min_length=1)
    password: SecretStr = SecretStr("")
    tls: MySQLTLS | None = None


class ProbeSettings(BaseModel):
    """How to probe: timeouts and orchestrator's optional per-instance queries (config maps onto it).

    Each `*_query` is trusted SQL from the operator's config, returning one value in its first column;
    a failing or empty one records nothing and does not fail the probe."""

    model_config = ConfigDict(frozen=True)

    connect_timeout: float = Field(default=2.0, gt=0)  # MySQLConnectTimeoutSeconds
    read_timeout: float = Field(default=10.0, gt=0)  # MySQLDiscoveryReadTimeoutSeconds
    discover_by_show_slave_hosts: bool = True  # else binlog dump threads in the processlist
    replication_lag_query: str | None = None
    detect_data_center_query: str | None = None
    detect_region_query: str | None = None
    detect_cluster_alias_query: str | None = None
    detect_promotion_rule_query: str | None = None
    detect_physical_environment_query: str | None = None
    detect_semi_sync_enforced_query: str | None = None  # the replica's semi-sync priority (0 = async)
    # Regexes on the instance's hostname, first group = the value (libs.topology.placement); the
    # matching detect_*_query overrides them when it answers.
    data_center_pattern: str | None = None
    region_pattern: str | None = None
    physical_environment_pattern: str | None = None
    # ClusterNameToAlias: regex on the cluster name -> alias, for a server that is no replica (a cluster's
    # name is its top master's `host:port`) when detect_cluster_alias_query gave nothing.
    cluster_name_to_alias: dict[str, str] = Field(default_factory=dict)


class MySQLError(Exception):
    """A MySQL failure reduced to (errno, one-line message). Internal to libs.mysql."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotSent(MySQLError):
    """The statement never left the client: its connection was found dead just before sending. Safe to
    send again on a fresh connection, even a write."""


def is_stale(err: MySQLError) -> bool:
    """A connection the server had dropped before it was used: 2006/2013 at once. A read timeout is
    not one (it says the server is slow or gone, and retrying would cost the whole timeout again)."""
    return err.code in STALE_CONNECTION_ERRORS and "timeout" not in err.message


def one_line(text: str, secret: str = "") -> str:
    """Collapse whitespace and scrub `secret` (belt and braces: servers do not echo passwords)."""
    flat = " ".join(str(text).split())
    if secret:
        flat = flat.replace(secret, "**********")
    return flat[:300]


def translate(exc: BaseException, *, secret: str = "", connecting: bool = False) -> MySQLError:
    """asyncmy/OS/timeout exceptions -> MySQLError with the MySQL client errno where one applies."""
    if isinstance(exc, MySQLError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        if connecting:
            return MySQLError(CR_CONN_HOST_ERROR, "Can't connect to MySQL server (connect timeout)")
        return MySQLError(CR_SERVER_LOST, "Lost connection to MySQL server during query (read timeout)")
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return MySQLError(args[0], one_line(str(args[1]), secret))
    if isinstance(exc, OSError):
        code = CR_CONN_HOST_ERROR if connecting else CR_SERVER_LOST
        return MySQLError(code, one_line(f"{type(exc).__name__}: {exc}", secret))
    return MySQLError(None, one_line(f"{type(exc).__name__}: {exc}", secret))


def _is_transport_failure(exc: BaseException) -> bool:
    if isinstance(exc, MySQLError):
        return exc.code is None or exc.code >= 2000
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return bool(args[0] >= 2000)
    return True


class MySQLConnection:
    """An open connection to one instance, with the dialect learnt from its handshake version."""

    def __init__(self, key: InstanceKey, raw: Any, dialect: Dialect, secret: str) -> None:
        self.key = key
        self.raw = raw
        self.dialect = dialect
        self._secret = secret
        self.checkouts = 0  # how many times the pool handed it out; > 1 means it was reused
        self.released_at = time.monotonic()  # when its last user gave it back to the pool

    @property
    def alive(self) -> bool:
        """False when the connection is known to be dead without a round trip: closed on this side, or
        the server closed or reset it (asyncmy's own check: transport closing, EOF or error received).
        True says nothing about a peer that vanished silently: only a round trip tells (`ping`)."""
        if not getattr(self.raw, "connected", True):
            return False
        return not getattr(self.raw, "_stream_broken", False)

    async def ping(self) -> None:
        """One COM_PING round trip (raises on a dead connection; never reconnects by itself)."""
        await self.raw.ping(reconnect=False)

    async def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run one statement; values in `params` are escaped by the driver, never interpolated."""
        async with self.raw.cursor() as cur:
            return int(await cur.execute(sql, params))

    async def fetch(self, sql: str, params: Sequence[Any] | None = None) -> list[Row]:
        async with self.raw.cursor(DictCursor) as cur:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

    async def fetch_many(self, statements: Sequence[str]) -> list[list[Row] | MySQLError]:
        """Send `statements` as ONE multi-statement round trip; return one row list per statement.

        The server stops at the first failing statement: its slot holds the MySQLError and the slots
        after it are missing (the returned list is shorter). Transport failures raise."""
        results: list[list[Row] | MySQLError] = []
        cur = self.raw.cursor(DictCursor)
        try:
            await cur.execute(";\n".join(statements))
            results.append(list(await cur.fetchall()))
            while len(results) < len(statements) and await cur.nextset():
                results.append(list(await cur.fetchall()))
        except Exception as exc:  # noqa: BLE001 - translated; transport failures re-raised
            err = translate(exc, secret=self._secret)
            if _is_transport_failure(err):
                raise err from None  # the cursor is not closed: the pool drops the connection
            results.append(err)
        await cur.close()
        return results

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken socket may fail in any way
            self.raw.close()


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn: MySQLConnection | None = None
    creds: Credentials | None = None


class ConnectionPool:
    """At most one open connection per instance, re-opened after a transport failure.

    Bound to the event loop that uses it (asyncmy connections are). `default_pool()` gives one per loop.
    """

    def __init__(
        self, *, connect_timeout: float = 2.0, read_timeout: float = 10.0, verify_idle_s: float | None = None
    ) -> None:
        """`verify_idle_s`: a pooled connection idle at least this long is pinged (within `read_timeout`)
        before it is handed out, and re-opened if the ping fails (action pools; probes retry instead)."""
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.verify_idle_s = verify_idle_s
        self._slots: dict[InstanceKey, _Slot] = {}

    def __len__(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.conn is not None)

    async def _open(self, key: InstanceKey, creds: Credentials) -> MySQLConnection:
        secret = creds.password.get_secret_value()
        try:
            tls = creds.tls.context() if creds.tls is not None else None
        except TLSFileError as exc:
            raise MySQLError(None, f"TLS: {exc}") from None
        try:
            async with asyncio.timeout(self.connect_timeout):
                raw = await asyncmy.connect(
                    host=key.host,
                    port=key.port,
                    user=creds.user,
                    password=secret,
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    autocommit=True,
                    charset="utf8mb4",
                    client_flag=CLIENT.MULTI_STATEMENTS | CLIENT.MULTI_RESULTS,
                    ssl=tls,
                )
        except Exception as exc:  # noqa: BLE001 - translated at the edge
            raise translate(exc, secret=secret, connecting=True) from None
        try:
            dialect = dialect_for(raw.get_server_info())
        except ValueError as exc:
            raw.close()
            raise MySQLError(None, str(exc)) from None
        return MySQLConnection(key, raw, dialect, secret)

    @asynccontextmanager
    async def connection(self, key: InstanceKey, creds: Credentials) -> AsyncIterator[MySQLConnection]:
        """Hold the instance's connection (opening it if needed) for the duration of the block.

        The pooled connection is checked first (see the module docstring) and re-opened if dead.
        Raises MySQLError on connect failure. Any transport-level failure inside the block discards the
        connection before re-raising, so the next user reconnects."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        async with slot.lock:
            if slot.conn is not None and (slot.creds != creds or not slot.conn.alive):
                self._drop(slot)
            if slot.conn is not None and not await self._verified(slot.conn):
                self._drop(slot)
            if slot.conn is None:
                slot.conn = await self._open(key, creds)
                slot.creds = creds
            conn = slot.conn
            conn.checkouts += 1
            try:
                yield conn
            except BaseException as exc:
                if _is_transport_failure(exc):
                    self._drop(slot)
                raise
            finally:
                conn.released_at = time.monotonic()

    async def _verified(self, conn: MySQLConnection) -> bool:
        """False when a connection idle for `verify_idle_s` or longer does not answer a ping."""
        if self.verify_idle_s is None or time.monotonic() - conn.released_at < self.verify_idle_s:
            return True
        try:
            async with asyncio.timeout(self.read_timeout):
                await conn.ping()
        except Exception:  # noqa: BLE001 - any failure: the connection is not usable
            return False
        return True

    async def run(
        self,
        key: InstanceKey,
        creds: Credentials,
        work: Callable[[MySQLConnection], Awaitable[T]],
        *,
        idempotent: bool = True,
    ) -> T:
        """Run `work` on the instance's connection; run it once more, on a fresh connection, when the
        first attempt proved the connection dead and repeating cannot do harm:
        - `NotSent` (nothing left the client): always, reads and writes alike;
        - a reused connection failing at once with 2006/2013 (`is_stale`, not a timeout): only for
          `idempotent` work (reads, probes). A write that failed so may have run: it is never repeated.
        `work` must raise MySQLError (translated) for failures it wants judged here."""
        for attempt in (1, 2):
            reused = False
            try:
                async with self.connection(key, creds) as conn:
                    reused = conn.checkouts > 1
                    return await work(conn)
            except MySQLError as exc:
                again = isinstance(exc, NotSent) or (idempotent and reused and is_stale(exc))
                if attempt == 2 or not again:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _drop(slot: _Slot) -> None:
        if slot.conn is not None:
            slot.conn.close()
        slot.conn = None
        slot.creds = None

    def discard(self, key: InstanceKey) -> None:
        """Close the instance's connection (e.g. after it was demoted or forgotten)."""
        slot = self._slots.pop(key, None)
        if slot is not None:
            self._drop(slot)

    def close(self) -> None:
        """Close every connection. The pool stays usable (connections re-open on demand)."""
        for slot in self._slots.values():
            self._drop(slot)
        self._slots.clear()


_DEFAULT_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectionPool] = (
    weakref.WeakKeyDictionary()
)


def default_pool(settings: ProbeSettings | None = None) -> ConnectionPool:
    """The running loop's shared pool (created with `settings`' timeouts on first use)."""
    loop = asyncio.get_running_loop()
    pool = _DEFAULT_POOLS.get(loop)
    if pool is None:
        s = settings or ProbeSettings()
        pool = _DEFAULT_POOLS[loop] = ConnectionPool(
            connect_timeout=s.connect_timeout, read_timeout=s.read_timeout
        )
    return pool
