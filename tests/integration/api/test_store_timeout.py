"""MySQLOrchestratorReadTimeoutSeconds on a real MariaDB read model: a query that takes longer than the
read timeout fails instead of hanging the API; without one it completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from libs.sandbox import Sandbox
from libs.store import open_store
from tests.integration.api.conftest import new_store_url


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # sqlmodel: plain SQL on purpose
def test_a_query_slower_than_the_read_timeout_fails(tmp_path: Path, mariadb_store: Sandbox) -> None:
    url = new_store_url("mariadb", tmp_path, mariadb_store)

    async def sleep_on(read_timeout: float | None, seconds: float) -> object:
        store = await open_store(url, read_timeout=read_timeout)
        try:
            async with store.session() as session:
                return (await session.execute(text(f"SELECT SLEEP({seconds})"))).scalar()
        finally:
            await store.close()

    assert asyncio.run(sleep_on(None, 1.5)) == 0  # SLEEP answers 0 when it slept its time
    with pytest.raises(SQLAlchemyError, match=r"(?i)lost connection|timed? ?out"):
        asyncio.run(sleep_on(0.5, 10))
