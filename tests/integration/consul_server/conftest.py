"""Test Consul fixtures for these tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.consul_server import ConsulTestServer


@pytest.fixture
async def http(consul_server: ConsulTestServer) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the in-process server: what these tests pin is the wire behaviour."""
    async with httpx.AsyncClient(base_url=consul_server.url, timeout=10) as client:
        yield client
