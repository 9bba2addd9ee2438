"""Records and raw reads shared by the KV adapter tests."""

from __future__ import annotations

import base64

import httpx

from libs.models.events import MasterRecord
from libs.models.instance import InstanceKey

PREFIX = "mysql/master"
MAIN = "mysql/master/shop"


def master(host: str, port: int = 3306, *, epoch: int, alias: str = "shop", **kw: str) -> MasterRecord:
    return MasterRecord(
        cluster="db-1:3306", alias=alias, master=InstanceKey(host=host, port=port), epoch=epoch, **kw
    )


async def read_tree(http: httpx.AsyncClient, key: str = MAIN) -> dict[str, str]:
    """One recursive read, decoded: what a consul-template reader sees at one instant."""
    resp = await http.get(f"/v1/kv/{key}", params={"recurse": ""})
    if resp.status_code == 404:
        return {}
    out = {}
    for entry in resp.json():
        if entry["Key"] == key or entry["Key"].startswith(key + "/"):
            raw = entry["Value"]
            out[entry["Key"]] = base64.b64decode(raw).decode() if raw else ""
    return out
