"""Fixtures for the KV adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.kv.consul import ConsulKVStore
from tests.consul_server import ConsulTestServer


@pytest.fixture
async def kv_store(consul_server: ConsulTestServer) -> AsyncIterator[ConsulKVStore]:
    store = ConsulKVStore(consul_server.address, datacenter="dc1", timeout=2.0)
    try:
        yield store
    finally:
        await store.close()
