"""The read model's async engine: SQLite (aiosqlite, the default) or MySQL/MariaDB (asyncmy).

`open_store(url)` creates the tables if missing and returns a `Store`; `store.session()` is an
`AsyncSession` context. Connection failures become `StoreError` with a one-line message that never
contains the URL's password. A MySQL read model connects with TLS when given an `ssl.SSLContext`
(libs.config.derive.read_model_tls: orchestrator's MySQLOrchestratorSSL* keys).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.errors import BatonError
from libs.store import tables

__all__ = ["Store", "StoreError", "from_db_time", "open_store", "to_db_time"]


class StoreError(BatonError):
    """The read model's database could not be reached or refused an operation."""


def to_db_time(value: datetime) -> datetime:
    """Aware (any zone) → naive UTC, the form every time column holds."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def from_db_time(value: datetime) -> datetime:
    """Naive UTC from the database → aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def redacted(url: str) -> str:
    """The URL with its password hidden (safe for logs and errors)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as its scheme only
        return url.split("://", 1)[0] + "://..."


def _tables() -> list[Any]:
    return [SQLModel.metadata.tables[str(t.__tablename__)] for t in tables.ALL_TABLES]


class Store:
    """An async engine and its session factory. One per process; `close()` disposes the pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all, tables=_tables())

    async def drop_schema(self) -> None:
        """Drop every read-model table (tests; a rebuild from the streams)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all, tables=_tables())

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


async def open_store(
    url: str, *, create: bool = True, tls: ssl.SSLContext | None = None, read_timeout: float | None = None
) -> Store:
    """Open the read model at `url` (`sqlite+aiosqlite:///path`, `mysql+asyncmy://u:p@h:port/db`);
    `tls`: every MySQL connection uses TLS with this context (ignored for SQLite, which is a file);
    `read_timeout`: seconds a MySQL query may take to answer (MySQLOrchestratorReadTimeoutSeconds)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises ArgumentError and friends
        raise StoreError(f"bad read-model URL {redacted(url)}: {exc}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start
        kwargs["connect_args"] = {"timeout": 30}
    elif parsed.get_backend_name() in ("mysql", "mariadb"):
        kwargs |= {"pool_pre_ping": True, "pool_recycle": 3600, "pool_size": 5, "max_overflow": 5}
        connect_args: dict[str, Any] = {"ssl": tls} if tls is not None else {}
        if read_timeout is not None:
            connect_args["read_timeout"] = read_timeout
        if connect_args:
            kwargs["connect_args"] = connect_args
    else:
        raise StoreError(f"unsupported read-model database {parsed.get_backend_name()!r} (sqlite or mysql)")
    try:
        engine = create_async_engine(parsed, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a missing driver or bad option
        raise StoreError(f"cannot open read model {redacted(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    if create:
        try:
            await store.create_schema()
        except (SQLAlchemyError, OSError) as exc:
            await store.close()
            cause = str(getattr(exc, "orig", exc) or type(exc).__name__).splitlines()[0]
            raise StoreError(f"cannot open read model {redacted(url)}: {cause}") from None
    return store
