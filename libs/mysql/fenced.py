"""The fenced execute: how the recovery leader sends every statement to MySQL.

Failover, graceful takeover, old-master fencing and manual operations all act through a `FencedSession`
(one instance, one fence, one time limit), via the replication commands of `libs.mysql.replication`:

- **fenced to the last statement**: `fence.check()` runs immediately before each statement is sent
  (after the connection was checked or re-opened), so a leader whose lease lapsed sends nothing more:
  the check raises (LeadershipLost) and no byte leaves the client;
- **bounded**: each statement runs under a client timeout `timeout` (the caller derives it from the
  lease TTL, below it) and, where the server can enforce it, the same server-side limit
  (`Dialect.time_limited`), so a statement cannot go on for long after the lease is lost; waits that
  legitimately take long are sent as short slices by the caller;
- **connections that survive restarts**: each statement checks out the instance's pooled connection,
  which the pool checks first (dead: re-opened; idle: pinged, with an action pool); a read that failed
  because the connection was already dead (2006/2013 at once on a reused connection) runs once more on a
  fresh one; a write only when nothing was sent (`NotSent`): one that failed after it was sent may have
  run, and is never repeated.
Failures are `ReplicationCommandError`s naming the statement and the instance, never a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from libs.errors import ReplicationCommandError
from libs.models import InstanceKey
from libs.mysql.connection import (
    CR_SERVER_GONE,
    ConnectionPool,
    Credentials,
    MySQLConnection,
    MySQLError,
    NotSent,
    Row,
    translate,
)
from libs.mysql.dialect import Dialect

T = TypeVar("T")
VERIFY_IDLE_S = 1.0  # an action connection idle this long is pinged before its next statement


class Fence(Protocol):
    """What a session asks before each statement (libs/recovery/fence.py's `Fence` is one)."""

    def check(self) -> None:
        """Raise (LeadershipLost) unless still allowed to act."""


def action_pool(*, connect_timeout: float, statement_timeout: float) -> ConnectionPool:
    """The pool for action connections: pinged after `VERIFY_IDLE_S` idle, reads bounded by the
    statement timeout."""
    return ConnectionPool(
        connect_timeout=connect_timeout, read_timeout=statement_timeout, verify_idle_s=VERIFY_IDLE_S
    )


class FencedSession:
    """Statements to one instance, each fenced and bounded (see the module docstring)."""

    def __init__(
        self, pool: ConnectionPool, key: InstanceKey, creds: Credentials, fence: Fence, timeout: float
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"a statement timeout must be positive, not {timeout}")
        self.pool, self.key, self.creds, self.fence, self.timeout = pool, key, creds, fence, timeout
        self._dialect: Dialect | None = None

    async def dialect(self) -> Dialect:
        """The instance's dialect, from its connection's handshake (opening it if needed; no statement)."""
        if self._dialect is None:

            async def handshake(conn: MySQLConnection) -> Dialect:
                return conn.dialect

            self._dialect = await self._call("connect", handshake, idempotent=True)
        return self._dialect

    async def read(
        self, sql: str, params: Sequence[Any] | None = None, *, what: str | None = None
    ) -> list[Row]:
        """A statement that changes nothing (SELECT, SHOW, a bounded wait); retried once on a fresh
        connection when the pooled one proved dead."""

        async def work(conn: MySQLConnection) -> list[Row]:
            return await self._timed(conn.fetch(self._ready(conn, sql), params), "")

        return await self._call(what or sql, work, idempotent=True)

    async def write(
        self, sql: str, params: Sequence[Any] | None = None, *, what: str | None = None, secret: str = ""
    ) -> int:
        """A statement that changes something; sent at most once unless provably never sent. `secret`
        (a password among `params`) is scrubbed from any error text."""

        async def work(conn: MySQLConnection) -> int:
            return await self._timed(conn.execute(self._ready(conn, sql), params), secret)

        return await self._call(what or sql, work, idempotent=False, secret=secret)

    async def write_sequence(self, statements: Sequence[tuple[str, Sequence[Any]]], *, what: str) -> int:
        """Statements that must share one session (`SET GTID_NEXT` … `COMMIT`): sent in order on the
        instance's connection, held for the whole sequence so no other statement comes in between, each
        fenced. A statement found not sent (the connection died: its session state with it) makes the
        whole sequence run again on a fresh connection, so it must be safe to repeat from its start."""

        async def work(conn: MySQLConnection) -> int:
            done = 0
            for sql, params in statements:
                done += await self._timed(conn.execute(self._ready(conn, sql), params or None), "")
            return done

        return await self._call(what, work, idempotent=False)

    async def scalar(self, sql: str, params: Sequence[Any] | None = None, *, what: str | None = None) -> Any:
        """The first column of the first row of a read (None when no row)."""
        rows = await self.read(sql, params, what=what)
        return next(iter(rows[0].values()), None) if rows else None

    def _ready(self, conn: MySQLConnection, sql: str) -> str:
        """`sql` as it is about to be sent on `conn` (with the server-side limit). Raises NotSent when the
        connection died since the pool checked it, and whatever `fence.check()` raises; the caller sends
        the statement right away, with no await in between."""
        if self._dialect is None:
            self._dialect = conn.dialect
        bounded = conn.dialect.time_limited(sql, self.timeout)
        if not conn.alive:
            raise NotSent(CR_SERVER_GONE, "MySQL server has gone away (found closed before sending)")
        self.fence.check()
        return bounded

    async def _timed(self, call: Awaitable[T], secret: str) -> T:
        """Run a statement already started by `call` under the client timeout; failures translated."""
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except Exception as exc:  # noqa: BLE001 - translated; the pool judges transport failures
            raise translate(exc, secret=secret) from None

    async def _call(
        self,
        what: str,
        work: Callable[[MySQLConnection], Awaitable[T]],
        *,
        idempotent: bool,
        secret: str = "",
    ) -> T:
        try:
            return await self.pool.run(self.key, self.creds, work, idempotent=idempotent)
        except MySQLError as exc:
            err = translate(exc, secret=secret)
            code = f" [{err.code}]" if err.code is not None else ""
            raise ReplicationCommandError(f"{what} on {self.key} failed{code}: {err.message}") from None
