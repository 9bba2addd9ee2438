"""Blocking queries: `?index=N&wait=D` returns on a relevant change or after D."""

from __future__ import annotations

import asyncio
import time

import httpx


async def index_of(http: httpx.AsyncClient, path: str, **params: str) -> int:
    return int((await http.get(path, params=params)).headers["X-Consul-Index"])


async def test_block_returns_when_the_key_changes(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/w", content=b"1")
    idx = await index_of(http, "/v1/kv/w")

    async def write_later() -> None:
        await asyncio.sleep(0.3)
        await http.put("/v1/kv/w", content=b"2")

    writer = asyncio.create_task(write_later())
    started = time.monotonic()
    resp = await http.get("/v1/kv/w", params={"index": str(idx), "wait": "5s"})
    elapsed = time.monotonic() - started
    await writer
    assert 0.25 < elapsed < 2.0
    assert int(resp.headers["X-Consul-Index"]) > idx
    assert resp.json()[0]["Value"] == "Mg=="  # "2"


async def test_block_times_out_after_wait_with_same_index(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/w", content=b"1")
    idx = await index_of(http, "/v1/kv/w")
    started = time.monotonic()
    resp = await http.get("/v1/kv/w", params={"index": str(idx), "wait": "400ms"})
    elapsed = time.monotonic() - started
    assert 0.39 < elapsed < 0.4 * (1 + 1 / 16) + 0.3  # wait plus at most wait/16 of jitter
    assert int(resp.headers["X-Consul-Index"]) == idx


async def test_stale_index_returns_at_once(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/w", content=b"1")
    await http.put("/v1/kv/w", content=b"2")
    started = time.monotonic()
    await http.get("/v1/kv/w", params={"index": "1", "wait": "5s"})
    assert time.monotonic() - started < 0.5


async def test_write_elsewhere_does_not_wake_a_key_watch(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/watched", content=b"1")
    idx = await index_of(http, "/v1/kv/watched")

    async def write_elsewhere() -> None:
        await asyncio.sleep(0.1)
        await http.put("/v1/kv/unrelated", content=b"x")

    writer = asyncio.create_task(write_elsewhere())
    started = time.monotonic()
    await http.get("/v1/kv/watched", params={"index": str(idx), "wait": "600ms"})
    await writer
    assert time.monotonic() - started > 0.55


async def test_prefix_watch_wakes_on_delete_under_prefix(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/pre/a", content=b"1")
    idx = await index_of(http, "/v1/kv/pre/", recurse="")

    async def delete_later() -> None:
        await asyncio.sleep(0.2)
        await http.delete("/v1/kv/pre/a")

    deleter = asyncio.create_task(delete_later())
    started = time.monotonic()
    resp = await http.get("/v1/kv/pre/", params={"recurse": "", "index": str(idx), "wait": "5s"})
    await deleter
    assert time.monotonic() - started < 2.0
    assert resp.status_code == 404
    assert int(resp.headers["X-Consul-Index"]) > idx
