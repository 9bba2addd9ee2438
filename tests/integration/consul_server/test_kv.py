"""`/v1/kv`: the shapes, status codes and index rules of Consul's KV endpoint."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.consul_server import parse_go_duration


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_get_missing_key_is_404_with_index(http: httpx.AsyncClient) -> None:
    resp = await http.get("/v1/kv/nothing/here")
    assert resp.status_code == 404
    assert int(resp.headers["X-Consul-Index"]) >= 1


async def test_put_then_get_returns_dir_entry(http: httpx.AsyncClient) -> None:
    put = await http.put("/v1/kv/mysql/master/c1", content=b"db-1:3306", params={"flags": "42"})
    assert put.status_code == 200 and put.json() is True
    resp = await http.get("/v1/kv/mysql/master/c1")
    assert resp.status_code == 200
    [entry] = resp.json()
    assert entry == {
        "LockIndex": 0,
        "Key": "mysql/master/c1",
        "Flags": 42,
        "Value": b64("db-1:3306"),
        "CreateIndex": entry["ModifyIndex"],
        "ModifyIndex": entry["ModifyIndex"],
    }
    assert resp.headers["X-Consul-Index"] == str(entry["ModifyIndex"])


async def test_raw_returns_the_bare_value(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/a", content=b"\x00binary\xff")
    resp = await http.get("/v1/kv/a", params={"raw": ""})
    assert resp.content == b"\x00binary\xff"


async def test_empty_value_reads_back_as_null(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/empty", content=b"")
    [entry] = (await http.get("/v1/kv/empty")).json()
    assert entry["Value"] is None


async def test_every_write_gets_a_higher_index_create_index_stays(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/k", content=b"1")
    [first] = (await http.get("/v1/kv/k")).json()
    await http.put("/v1/kv/other", content=b"x")
    await http.put("/v1/kv/k", content=b"2")
    [second] = (await http.get("/v1/kv/k")).json()
    assert second["ModifyIndex"] > first["ModifyIndex"] + 1  # the write to `other` took an index too
    assert second["CreateIndex"] == first["CreateIndex"]


async def test_unchanged_write_keeps_modify_index(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/k", content=b"same")
    [first] = (await http.get("/v1/kv/k")).json()
    assert (await http.put("/v1/kv/k", content=b"same")).json() is True
    [second] = (await http.get("/v1/kv/k")).json()
    assert second["ModifyIndex"] == first["ModifyIndex"]


async def test_recurse_lists_prefix_sorted_and_index_is_highest_under_prefix(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/p/b", content=b"2")
    await http.put("/v1/kv/p/a", content=b"1")
    await http.put("/v1/kv/q", content=b"elsewhere")
    resp = await http.get("/v1/kv/p/", params={"recurse": ""})
    entries = resp.json()
    assert [e["Key"] for e in entries] == ["p/a", "p/b"]
    assert int(resp.headers["X-Consul-Index"]) == max(e["ModifyIndex"] for e in entries)
    assert (await http.get("/v1/kv/none/", params={"recurse": ""})).status_code == 404


async def test_keys_with_separator_lists_one_level(http: httpx.AsyncClient) -> None:
    for key in ("web/bar", "web/foo", "web/subdir/x", "web/subdir/y", "webby"):
        await http.put(f"/v1/kv/{key}", content=b"v")
    resp = await http.get("/v1/kv/web/", params={"keys": "", "separator": "/"})
    assert resp.json() == ["web/bar", "web/foo", "web/subdir/"]
    resp = await http.get("/v1/kv/web", params={"keys": "true"})  # python-consul2 sends keys=True
    assert resp.json() == ["web/bar", "web/foo", "web/subdir/x", "web/subdir/y", "webby"]


async def test_cas_zero_creates_only(http: httpx.AsyncClient) -> None:
    assert (await http.put("/v1/kv/c", content=b"first", params={"cas": "0"})).json() is True
    assert (await http.put("/v1/kv/c", content=b"second", params={"cas": "0"})).json() is False
    assert (await http.get("/v1/kv/c", params={"raw": ""})).content == b"first"


async def test_cas_n_compares_modify_index(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/c", content=b"v1")
    [entry] = (await http.get("/v1/kv/c")).json()
    idx = entry["ModifyIndex"]
    assert (await http.put("/v1/kv/c", content=b"v2", params={"cas": str(idx + 1)})).json() is False
    assert (await http.put("/v1/kv/c", content=b"v2", params={"cas": str(idx)})).json() is True
    assert (await http.put("/v1/kv/c", content=b"v3", params={"cas": str(idx)})).json() is False
    assert (await http.put("/v1/kv/missing", content=b"v", params={"cas": "5"})).json() is False
    assert (await http.get("/v1/kv/c", params={"raw": ""})).content == b"v2"


async def test_delete_single_recurse_and_cas(http: httpx.AsyncClient) -> None:
    for key in ("t/a", "t/b", "t/c/d", "u"):
        await http.put(f"/v1/kv/{key}", content=b"v")
    assert (await http.delete("/v1/kv/t/a")).json() is True
    assert (await http.get("/v1/kv/t/a")).status_code == 404
    assert (await http.delete("/v1/kv/never-existed")).json() is True
    [entry] = (await http.get("/v1/kv/t/b")).json()
    assert (await http.delete("/v1/kv/t/b", params={"cas": str(entry["ModifyIndex"] + 9)})).json() is False
    assert (await http.delete("/v1/kv/t/b", params={"cas": str(entry["ModifyIndex"])})).json() is True
    assert (await http.delete("/v1/kv/t/", params={"recurse": ""})).json() is True
    assert (await http.get("/v1/kv/t/", params={"recurse": ""})).status_code == 404
    assert (await http.get("/v1/kv/u")).status_code == 200


async def test_prefix_index_does_not_slide_back_after_delete(http: httpx.AsyncClient) -> None:
    await http.put("/v1/kv/d/a", content=b"v")
    await http.put("/v1/kv/d/b", content=b"v")
    before = int((await http.get("/v1/kv/d/", params={"recurse": ""})).headers["X-Consul-Index"])
    await http.delete("/v1/kv/d/b")
    after = int((await http.get("/v1/kv/d/", params={"recurse": ""})).headers["X-Consul-Index"])
    assert after > before  # the tombstone counts


async def test_bad_parameters_are_400(http: httpx.AsyncClient) -> None:
    assert (await http.put("/v1/kv/x", content=b"v", params={"cas": "nope"})).status_code == 400
    assert (await http.get("/v1/kv/x", params={"index": "1", "wait": "soon"})).status_code == 400
    assert (await http.put("/v1/kv/", content=b"v")).status_code == 400


async def test_other_datacenter_is_unreachable(http: httpx.AsyncClient) -> None:
    assert (await http.get("/v1/kv/x", params={"dc": "dc1"})).status_code == 404
    resp = await http.get("/v1/kv/x", params={"dc": "dc9"})
    assert resp.status_code == 500 and "No path to datacenter" in resp.text


async def test_status_and_agent_self(http: httpx.AsyncClient) -> None:
    assert isinstance((await http.get("/v1/status/leader")).json(), str)
    assert (await http.get("/v1/agent/self")).json()["Config"]["Datacenter"] == "dc1"


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10.0), ("1m30s", 90.0), ("250ms", 0.25), ("5m", 300.0), ("0", 0.0)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "5s junk"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)
