"""orchestrator's read routes against a real 4-node sandbox, probed for real and projected through NATS
into each read-model backend (SQLite, MariaDB)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from libs.models import InstanceSnapshot
from libs.sandbox import Sandbox
from tests.integration.api.conftest import ApiProcess, publish_topology


@pytest.fixture(scope="module")
def topo(api: ApiProcess, sandbox4: Sandbox) -> Iterator[dict[str, InstanceSnapshot]]:
    snaps = publish_topology(sandbox4, api.nats_url)
    master = str(sandbox4.key("master"))
    resp = api.wait_for("cluster/" + master, lambda r: r.status_code == 200 and len(r.json()) == 4)
    assert resp.status_code == 200, resp.text
    yield dict(zip(sandbox4.names, snaps, strict=True))


def _hp(snap: InstanceSnapshot) -> str:
    return f"{snap.key.host}/{snap.key.port}"


def test_clusters_and_clusters_info(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    master = str(topo["master"].key)
    assert master in api.get("clusters").json()
    infos = {i["ClusterName"]: i for i in api.get("clusters-info").json()}
    info = infos[master]
    assert info["ClusterAlias"] == master
    assert info["CountInstances"] == 4
    assert info["HasAutomatedMasterRecovery"] is True
    assert set(info) >= {"ClusterDomain", "HeuristicLag", "HasAutomatedIntermediateMasterRecovery"}


@pytest.mark.parametrize("by", ["name", "instance", "alias-route"])
def test_cluster_by_name_instance_or_alias(
    api: ApiProcess, topo: dict[str, InstanceSnapshot], by: str
) -> None:
    master = str(topo["master"].key)
    path = {
        "name": f"cluster/{master}",
        "instance": f"cluster/{topo['replica2'].key}",
        "alias-route": f"cluster/alias/{master}",
    }[by]
    resp = api.get(path)
    assert resp.status_code == 200, resp.text
    keys = {(i["Key"]["Hostname"], i["Key"]["Port"]) for i in resp.json()}
    assert keys == {(s.key.host, s.key.port) for s in topo.values()}
    assert api.get(f"cluster-info/{topo['replica1'].key}").json()["ClusterName"] == master


def test_unknown_cluster_is_404_envelope(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    for path in (
        "cluster/no-such-cluster",
        "cluster-info/nope:3306",
        "topology/nope",
        "master/nope",
        "replication-analysis/nope",
        "downtimed/nope",
    ):
        resp = api.get(path)
        assert resp.status_code == 404, (path, resp.text)
        body = resp.json()
        assert body["Code"] == "ERROR" and "not found" in body["Message"], body


def test_topology_ascii_tree(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    body = api.get(f"topology/{topo['master'].key}").json()
    assert body["Code"] == "OK"
    lines = body["Details"].splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(str(topo["master"].key)) and ",rw," in lines[0]
    assert all(line.startswith("+ ") and ",ro," in line and ",ok," in line for line in lines[1:])
    same = api.get(f"topology/{_hp(topo['replica3'])}").json()["Details"]
    assert same.splitlines()[0] == lines[0]


def test_topology_tabulated_has_the_trees_facts_in_aligned_columns(
    api: ApiProcess, topo: dict[str, InstanceSnapshot]
) -> None:
    master = topo["master"].key
    tree = api.get(f"topology/{master}").json()["Details"].splitlines()
    body = api.get(f"topology-tabulated/{master}").json()
    assert body["Code"] == "OK" and body["Message"] == f"Topology for {master}"
    lines = body["Details"].splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # every column padded
    bars = {tuple(i for i, ch in enumerate(line) if ch == "|") for line in lines}
    assert len(bars) == 1 and len(bars.pop()) == 6  # the same 7 columns in every line
    for bracketed, tabulated in zip(tree, lines, strict=True):
        cells = [c.strip() for c in tabulated.split("|")]
        assert bracketed.startswith(cells[0] + " ")
        assert bracketed.endswith("[" + ",".join(c for c in cells[1:] if c) + "]")
    assert lines[0].split("|")[4] == "rw" and all(line.split("|")[4] == "ro" for line in lines[1:])
    by_instance = api.get(f"topology-tabulated/{_hp(topo['replica3'])}").json()
    assert by_instance["Details"].splitlines()[0] == lines[0]
    missing = api.get("topology-tabulated/nope")
    assert missing.status_code == 404 and missing.json()["Code"] == "ERROR"


def test_instance_fields_match_the_server(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    master, replica = topo["master"], topo["replica1"]
    doc = api.get(f"instance/{_hp(replica)}").json()
    assert doc["Key"] == {"Hostname": replica.key.host, "Port": replica.key.port}
    assert doc["MasterKey"] == {"Hostname": master.key.host, "Port": master.key.port}
    assert doc["ServerID"] == replica.server_id and doc["ReadOnly"] is True
    assert doc["Slave_IO_Running"] is True and doc["ReplicationSQLThreadRuning"] is True
    assert doc["ReplicationIOThreadState"] == 1 and doc["ReplicationDepth"] == 1
    assert doc["UsingMariaDBGTID"] is True and doc["FlavorName"] == "MariaDB"
    assert doc["ClusterName"] == str(master.key) and doc["IsLastCheckValid"] is True
    mdoc = api.get(f"instance/{_hp(master)}").json()
    assert mdoc["ReadOnly"] is False and mdoc["ReplicationDepth"] == 0
    assert mdoc["MasterKey"] == {"Hostname": "", "Port": 0} and mdoc["ReplicationSQLThreadState"] == -1
    assert mdoc["ExecutedGtidSet"] == master.gtid_current_pos


@pytest.mark.parametrize("port", ["abc", "0", "70000", "-1", "3306x"])
def test_bad_port_is_400(api: ApiProcess, topo: dict[str, InstanceSnapshot], port: str) -> None:
    for route in ("instance", "instance-replicas", "begin-downtime", "recover"):
        tail = "/me/why/10m" if route == "begin-downtime" else ""
        resp = api.get(f"{route}/127.0.0.1/{port}{tail}")
        assert resp.status_code == 400, (route, resp.text)
        assert resp.json()["Code"] == "ERROR"


def test_unknown_instance_is_404(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    for route in (
        "instance/127.0.0.1/1",
        "instance-replicas/no.such.host/3306",
        "topology/127.0.0.1/2",
        "replication-analysis/instance/127.0.0.1/3",
    ):
        resp = api.get(route)
        assert resp.status_code == 404, (route, resp.text)


def test_instance_replicas_masters_all_instances(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    master = topo["master"]
    replicas = api.get(f"instance-replicas/{_hp(master)}").json()
    assert sorted(r["Key"]["Port"] for r in replicas) == sorted(
        topo[n].key.port for n in ("replica1", "replica2", "replica3")
    )
    assert api.get(f"instance-replicas/{_hp(topo['replica1'])}").json() == []
    masters = api.get("masters").json()
    assert [m["Key"]["Port"] for m in masters if m["ClusterName"] == str(master.key)] == [master.key.port]
    assert api.get(f"master/{topo['replica2'].key}").json()["Key"]["Port"] == master.key.port
    ports = {i["Key"]["Port"] for i in api.get("all-instances").json()}
    assert ports >= {s.key.port for s in topo.values()}


def test_replication_analysis_sees_stopped_replication(
    api: ApiProcess, topo: dict[str, InstanceSnapshot], sandbox4: Sandbox
) -> None:
    master = str(topo["master"].key)
    replicas = ["replica1", "replica2", "replica3"]

    def codes() -> list[str]:
        body = api.get("replication-analysis").json()
        assert body["Code"] == "OK" and body["Message"] == "Analysis"
        return [e["Analysis"] for e in body["Details"] if e["ClusterDetails"]["ClusterName"] == master]

    assert "AllMasterReplicasNotReplicating" not in codes()

    async def stop_all() -> None:
        await asyncio.gather(*(sandbox4.sql(n, "STOP SLAVE") for n in replicas))

    async def start_all() -> None:
        await asyncio.gather(*(sandbox4.sql(n, "START SLAVE") for n in replicas))
        await asyncio.gather(*(sandbox4.wait_replicating(n) for n in replicas))

    asyncio.run(stop_all())
    try:
        publish_topology_allow(sandbox4, api)
        resp = api.wait_for(
            "replication-analysis",
            lambda r: any(e["Analysis"] == "AllMasterReplicasNotReplicating" for e in r.json()["Details"]),
        )
        entry = next(e for e in resp.json()["Details"] if e["Analysis"] == "AllMasterReplicasNotReplicating")
        assert entry["AnalyzedInstanceKey"]["Port"] == topo["master"].key.port
        assert entry["IsMaster"] is True and entry["CountReplicas"] == 3
        assert entry["CountValidReplicatingReplicas"] == 0
        one = api.get(f"replication-analysis/instance/{_hp(topo['master'])}").json()["Details"]
        assert [e["Analysis"] for e in one] == ["AllMasterReplicasNotReplicating"]
        assert api.get(f"replication-analysis/{master}").json()["Details"]
    finally:
        asyncio.run(start_all())
        publish_topology(sandbox4, api.nats_url)
    api.wait_for("replication-analysis", lambda r: "AllMasterReplicasNotReplicating" not in codes())
    assert "AllMasterReplicasNotReplicating" not in codes()


def publish_topology_allow(sb: Sandbox, api: ApiProcess) -> None:
    from tests.integration.api.conftest import probe_all, publish_snapshots

    asyncio.run(publish_snapshots(api.nats_url, asyncio.run(probe_all(sb))))


def test_downtime_begin_list_end(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    replica = topo["replica3"]
    resp = api.get(f"begin-downtime/{_hp(replica)}/alice/disk%20swap/15m")
    assert resp.status_code == 200, resp.text
    assert resp.json()["Details"] == {"Hostname": replica.key.host, "Port": replica.key.port}
    down = api.get("downtimed").json()
    assert [d["Key"]["Port"] for d in down] == [replica.key.port]
    doc = api.get(f"instance/{_hp(replica)}").json()
    assert (
        doc["IsDowntimed"] is True
        and doc["DowntimeOwner"] == "alice"
        and doc["DowntimeReason"] == "disk swap"
    )
    assert api.get(f"downtimed/{topo['master'].key}").json()[0]["Key"]["Port"] == replica.key.port
    assert api.get(f"end-downtime/{_hp(replica)}").status_code == 200
    assert api.get("downtimed").json() == []
    again = api.get(f"end-downtime/{_hp(replica)}")
    assert again.status_code == 200 and "not downtimed" in again.json()["Message"]
    for bad in ("10x", "-5m", "abc", "400d"):
        assert api.get(f"begin-downtime/{_hp(replica)}/alice/why/{bad}").status_code == 400, bad
    assert api.get("begin-downtime/127.0.0.1/1/alice/why/10m").status_code == 404


def test_register_candidate(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    replica = topo["replica2"]
    resp = api.get(f"register-candidate/{_hp(replica)}/prefer")
    assert resp.status_code == 200, resp.text
    doc = api.get(f"instance/{_hp(replica)}").json()
    assert doc["PromotionRule"] == "prefer" and doc["IsCandidate"] is True
    assert api.get(f"register-candidate/{_hp(replica)}/bogus").status_code == 400
    assert api.get("register-candidate/127.0.0.1/1/prefer").status_code == 404
    assert api.get(f"register-candidate/{_hp(replica)}/neutral").status_code == 200
    assert api.get(f"instance/{_hp(replica)}").json()["PromotionRule"] == "neutral"


def test_global_recoveries_switch(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    assert api.get("disable-global-recoveries").json()["Details"] == "disabled"
    assert api.get("check-global-recoveries").json()["Details"] == "disabled"
    assert api.get("enable-global-recoveries").json()["Details"] == "enabled"
    assert api.get("check-global-recoveries").json()["Details"] == "enabled"


def test_health_status_leader_check(api: ApiProcess) -> None:
    health = api.get("health").json()
    assert health["Code"] == "OK" and health["Details"]["Healthy"] is True
    assert health["Details"]["ActiveNode"]["DBBackend"] == ("sqlite" if api.backend == "sqlite" else "mysql")
    assert api.get("status").json()["Code"] == "OK"
    assert api.get("leader-check").json() == "OK"
    assert api.get("_ping").status_code == 200 and api.get("lb-check").status_code == 200


def test_unknown_route_and_post_are_envelopes(api: ApiProcess) -> None:
    resp = api.get("no-such-route")
    assert resp.status_code == 404 and resp.json()["Code"] == "ERROR"
    posted = httpx_post(api, "check-global-recoveries")
    assert posted.status_code == 405 and posted.json()["Code"] == "ERROR"
    assert httpx_post(api, "enable-global-recoveries").status_code == 200


def httpx_post(api: ApiProcess, path: str) -> httpx.Response:
    return httpx.post(f"{api.api}/{path}", timeout=10)
