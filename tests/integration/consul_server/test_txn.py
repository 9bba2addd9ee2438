"""`/v1/txn`: all-or-nothing, one shared index, Consul's result and error shapes and limits."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.consul_server import ConsulTestServer


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kv(verb: str, key: str, value: str | None = None, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"Verb": verb, "Key": key, **extra}
    if value is not None:
        op["Value"] = b64(value)
    return {"KV": op}


async def test_sets_commit_together_with_one_index(http: httpx.AsyncClient) -> None:
    resp = await http.put(
        "/v1/txn", json=[kv("set", "m/a", "1"), kv("set", "m/b", "2"), kv("set", "m/c", "3")]
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["Errors"] is None
    indexes = {r["KV"]["ModifyIndex"] for r in body["Results"]}
    assert len(indexes) == 1
    assert all(r["KV"]["Value"] is None for r in body["Results"])  # only get/get-tree carry values
    listed = (await http.get("/v1/kv/m/", params={"recurse": ""})).json()
    assert {e["Key"]: e["ModifyIndex"] for e in listed} == dict.fromkeys(["m/a", "m/b", "m/c"], indexes.pop())


async def test_failed_check_rolls_back_everything_and_lists_every_failure(
    http: httpx.AsyncClient, consul_server: ConsulTestServer
) -> None:
    await http.put("/v1/kv/m/a", content=b"old")
    [entry] = (await http.get("/v1/kv/m/a")).json()
    before = consul_server.store.snapshot()
    ops = [
        kv("set", "m/b", "new"),
        kv("check-index", "m/a", Index=entry["ModifyIndex"] + 1),
        kv("set", "m/a", "new"),
        kv("check-not-exists", "m/a"),
    ]
    resp = await http.put("/v1/txn", json=ops)
    assert resp.status_code == 409
    body = resp.json()
    assert body["Results"] is None
    assert [e["OpIndex"] for e in body["Errors"]] == [1, 3]
    assert "current modify index" in body["Errors"][0]["What"]
    assert body["Errors"][1]["What"] == 'key "m/a" exists'
    assert consul_server.store.snapshot() == before
    assert (await http.get("/v1/kv/m/b")).status_code == 404


async def test_later_ops_see_earlier_ones(http: httpx.AsyncClient) -> None:
    resp = await http.put(
        "/v1/txn", json=[kv("check-not-exists", "n/x"), kv("set", "n/x", "v"), kv("get", "n/x")]
    )
    assert resp.status_code == 200
    results = resp.json()["Results"]
    assert results[-1]["KV"]["Value"] == b64("v")


async def test_cas_and_check_index_pass_on_the_current_index(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/e", content=b"5")
    [entry] = (await http.get("/v1/kv/e")).json()
    idx = entry["ModifyIndex"]
    ok = await http.put(
        "/v1/txn",
        json=[kv("check-index", "e", Index=idx), kv("cas", "e", "6", Index=idx), kv("set", "e/x", "y")],
    )
    assert ok.status_code == 200
    stale = await http.put("/v1/txn", json=[kv("cas", "e", "7", Index=idx)])
    assert stale.status_code == 409
    assert stale.json()["Errors"] == [{"OpIndex": 0, "What": 'failed to set key "e", index is stale'}]


async def test_reads_get_tree_and_missing_get(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/r/a", content=b"1")
    await http.put("/v1/kv/r/b", content=b"2")
    resp = await http.put("/v1/txn", json=[kv("get-tree", "r/")])
    assert resp.status_code == 200
    assert [r["KV"]["Value"] for r in resp.json()["Results"]] == [b64("1"), b64("2")]
    assert "X-Consul-Index" in resp.headers  # read-only txns are answered like reads
    missing = await http.put("/v1/txn", json=[kv("get", "r/zzz")])
    assert missing.status_code == 409
    assert missing.json()["Errors"][0]["What"] == 'key "r/zzz" doesn\'t exist'


async def test_deletes(http: httpx.AsyncClient) -> None:
    for key in ("x/a", "x/b", "x/c/d", "y"):
        await http.put(f"/v1/kv/{key}", content=b"v")
    [y] = (await http.get("/v1/kv/y")).json()
    resp = await http.put(
        "/v1/txn",
        json=[kv("delete-tree", "x/"), kv("delete-cas", "y", Index=y["ModifyIndex"]), kv("delete", "nope")],
    )
    assert resp.status_code == 200
    assert resp.json()["Results"] == []  # deletes add no results
    assert (await http.get("/v1/kv/", params={"keys": ""})).status_code == 404


async def test_more_than_64_operations_is_413(http: httpx.AsyncClient) -> None:
    ops = [kv("set", f"big/{i}", "v") for i in range(65)]
    resp = await http.put("/v1/txn", json=ops)
    assert resp.status_code == 413
    assert "too many operations (65 > 64)" in resp.text
    assert (await http.put("/v1/txn", json=ops[:64])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"KV": {}}', b'[{"KV": {"Verb": "set", "Key": "k", "Value": "***"}}]', b'[{"Node": {}}]'],
)
async def test_unparsable_bodies_are_400(http: httpx.AsyncClient, body: bytes) -> None:
    assert (await http.put("/v1/txn", content=body)).status_code == 400


async def test_unknown_verb_is_an_operation_error(http: httpx.AsyncClient) -> None:
    resp = await http.put("/v1/txn", json=[kv("set", "k", "v"), kv("frobnicate", "k")])
    assert resp.status_code == 409
    assert resp.json()["Errors"] == [{"OpIndex": 1, "What": 'unknown KV verb "frobnicate"'}]
    assert (await http.get("/v1/kv/k")).status_code == 404
