"""orchestrator's questions, tags, maintenance and operations routes (services/api/routes/questions.py)
and their `baton` verbs, against the real API process, a real nats-server and a real 4-node sandbox —
including locate-gtid-errant on a MariaDB replica with an injected errant transaction, read by a real
recovery leader."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from libs.bus.server import NatsServer
from libs.cli.question_commands import register
from libs.sandbox import Sandbox
from tests.integration.api.conftest import ApiProcess, new_store_url, publish_topology, start_api
from tests.integration.api.test_cli import run
from tests.integration.api.test_submit_masters import recovery_leader


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, nats_server_module: NatsServer) -> Iterator[ApiProcess]:
    """The API on SQLite (the read model plays no part in these routes)."""
    tmp = tmp_path_factory.mktemp("api-questions")
    url = new_store_url("sqlite", tmp, None)
    proc = start_api(tmp, nats_server_module.url, url, "sqlite", {"RecoverMasterClusterFilters": ["*"]})
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def names(api: ApiProcess, sandbox4: Sandbox) -> dict[str, str]:
    publish_topology(sandbox4, api.nats_url)
    master = str(sandbox4.key("master"))
    api.wait_for(f"cluster/{master}", lambda r: r.status_code == 200 and len(r.json()) == 4)
    return {n: str(sandbox4.key(n)) for n in sandbox4.names}


def hp(key: str) -> str:
    return key.replace(":", "/")


def keys(docs: list[dict[str, Any]]) -> list[str]:
    return [
        f"{d['Hostname']}:{d['Port']}" if "Hostname" in d else f"{d['Key']['Hostname']}:{d['Key']['Port']}"
        for d in docs
    ]


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    """The question verbs on a bare root app (`run` comes from test_cli)."""
    root = typer.Typer(callback=lambda: None)
    register(root)
    return root


def test_tags(api: ApiProcess, names: dict[str, str], cli: typer.Typer) -> None:
    r1, r2, r3 = names["replica1"], names["replica2"], names["replica3"]
    body = api.get(f"tag/{hp(r1)}", params={"tag": "role=backup"}).json()
    assert body == {"Code": "OK", "Message": f"{r1} tagged with role=backup", "Details": keys_doc(r1)}
    assert api.get(f"tag/{hp(r2)}/role/reporting").json()["Code"] == "OK"
    assert api.get(f"tag/{hp(r2)}", params={"tag": "dc"}).json()["Code"] == "OK"
    assert api.get(f"tags/{hp(r1)}").json() == ["role=backup"]
    assert api.get(f"tags/{hp(r2)}").json() == ["dc=", "role=reporting"]
    assert api.get(f"tags/{hp(r3)}").json() == []
    assert api.get(f"tag-value/{hp(r1)}", params={"tag": "role"}).json() == "backup"
    assert api.get(f"tag-value/{hp(r1)}/role").json() == "backup"
    missing = api.get(f"tag-value/{hp(r3)}", params={"tag": "role"})
    assert missing.status_code == 404 and missing.json()["Message"] == f"tag role not found for {r3}"
    assert keys(api.get("tagged", params={"tag": "role"}).json()) == sorted([r1, r2])
    assert keys(api.get("tagged", params={"tag": "role=backup"}).json()) == [r1]
    assert keys(api.get("tagged", params={"tag": "role,dc"}).json()) == [r2]
    assert r3 in keys(api.get("tagged", params={"tag": "~role"}).json())

    tree = api.get(f"topology-tags/{names['master']}").json()
    lines = tree["Details"].splitlines()
    assert tree["Code"] == "OK" and len(lines) == 4
    by_key = {line.split()[1] if line.startswith("+") else line.split()[0]: line for line in lines}
    assert by_key[r1].endswith(" [role=backup]") and by_key[r2].endswith(" [dc,role=reporting]")
    assert by_key[names["master"]].endswith(" []")

    # the CLI verbs print what orchestrator-client prints
    assert run(cli, api, "tags", "-i", r2)[1].split() == ["dc=", "role=reporting"]
    assert run(cli, api, "tag-value", "-i", r1, "-t", "role")[1].strip() == "backup"
    assert run(cli, api, "tagged", "-t", "role=backup")[1].split() == [r1]
    code, out, _ = run(cli, api, "tag", "-i", r3, "-t", "role=backup")
    assert code == 0 and out.strip() == r3

    refused = api.get("untag-all", params={"tag": "role"})
    assert (
        refused.status_code == 400
        and "Will not delete on-valued tag across instances" in refused.json()["Message"]
    )
    body = api.get("untag-all", params={"tag": "role=backup"}).json()
    assert body["Message"] == "role removed from 2 instances" and keys(body["Details"]) == sorted([r1, r3])
    body = api.get(f"untag/{hp(r2)}", params={"tag": "role"}).json()
    assert body["Message"] == "role removed from 1 instances" and keys(body["Details"]) == [r2]
    assert run(cli, api, "untag", "-i", r2, "-t", "dc")[1].split() == [r2]
    assert api.get("tagged", params={"tag": "role"}).json() == []
    code, _, err = run(cli, api, "tag-value", "-i", r2, "-t", "dc")
    assert code == 1 and "tag dc not found" in err


def keys_doc(key: str) -> dict[str, Any]:
    host, port = key.rsplit(":", 1)
    return {"Hostname": host, "Port": int(port)}


def test_maintenance(api: ApiProcess, names: dict[str, str], cli: typer.Typer) -> None:
    r3 = names["replica3"]
    body = api.get(f"begin-maintenance/{hp(r3)}/ops/disk%20swap").json()
    assert body == {"Code": "OK", "Message": f"Maintenance begun: {r3}", "Details": keys_doc(r3)}
    again = api.get(f"begin-maintenance/{hp(r3)}/dba/other")
    assert again.status_code == 409
    assert (
        again.json()["Message"] == f"Cannot begin maintenance for instance: {r3}; maintenance reason: other"
    )
    assert api.get(f"in-maintenance/{hp(r3)}").json() == {"Code": "OK", "Message": "true", "Details": r3}
    [entry] = api.get("maintenance").json()
    assert entry["Key"] == keys_doc(r3) and entry["Owner"] == "ops" and entry["Reason"] == "disk swap"
    assert entry["IsActive"] is True
    assert api.get(f"end-maintenance/{hp(r3)}").json()["Message"] == f"Maintenance ended: {r3}"
    assert api.get(f"in-maintenance/{hp(r3)}").json()["Message"] == "false"
    assert api.get("maintenance").json() == []
    code, out, err = run(cli, api, "begin-maintenance", "-i", r3, "-r", "cli test", "-o", "me")
    assert code == 0 and out.strip() == r3, err
    assert run(cli, api, "begin-maintenance", "-i", r3, "-r", "twice")[0] == 1
    assert run(cli, api, "end-maintenance", "-i", r3)[1].strip() == r3
    unknown = api.get("begin-maintenance/127.0.0.1/1/ops/x")
    assert unknown.status_code == 404 and unknown.json()["Code"] == "ERROR"


def test_questions(api: ApiProcess, names: dict[str, str], cli: typer.Typer) -> None:
    master, r1 = names["master"], names["replica1"]
    found = keys(api.get("search", params={"s": r1.split(":")[1]}).json())
    assert found == [r1]
    assert sorted(keys(api.get("search", params={"s": "127.0.0.1"}).json())) == sorted(names.values())
    assert len(api.get(f"search/{master}").json()) == 4  # the cluster name matches every member
    assert run(cli, api, "search", "-i", r1)[1].split() == [r1]
    assert run(cli, api, "is-replicating", "-i", r1)[1].strip() == r1
    assert run(cli, api, "is-replicating", "-i", master)[1].strip() == ""
    assert run(cli, api, "is-replication-stopped", "-i", r1)[1].strip() == ""
    assert run(cli, api, "which-broken-replicas", "-i", master)[1].strip() == ""
    assert run(cli, api, "which-cluster-alias", "-a", master)[1].strip() == master
    assert run(cli, api, "which-gtid-errant", "-i", r1)[1].strip() == ""
    assert run(cli, api, "dominant-dc")[0] == 0
    osc = keys(api.get(f"cluster-osc-replicas/{master}").json())
    assert len(osc) == 2 and set(osc) < {names["replica1"], names["replica2"], names["replica3"]}
    assert keys(api.get(f"cluster-osc-slaves/{master}").json()) == osc
    assert run(cli, api, "which-cluster-osc-replicas", "-a", master)[1].split() == osc
    assert run(cli, api, "which-cluster-osc-running-replicas", "-a", master)[1].split() == osc
    assert api.get(f"instance/{hp(r1)}").json()["GtidErrant"] == ""

    # can-replicate-from[-gtid], as orchestrator-client sends them: "true" with the source's key, or the
    # reason in orchestrator's words
    r2 = names["replica2"]
    for verb in ("can-replicate-from", "can-replicate-from-gtid"):
        yes = api.get(f"{verb}/{hp(r1)}/{hp(r2)}").json()
        assert yes["Code"] == "OK" and yes["Message"] == "true", yes
        assert f"{yes['Details']['Hostname']}:{yes['Details']['Port']}" == r2
        itself = api.get(f"{verb}/{hp(r1)}/{hp(r1)}")
        assert itself.status_code == 409 and itself.json()["Code"] == "ERROR"
        assert itself.json()["Message"] == f"instance cannot replicate from itself: {r1}"
    assert api.get(f"can-replicate-from/{hp(r1)}/127.0.0.1/1").status_code == 404
    assert run(cli, api, "can-replicate-from", "-i", r1, "-d", r2)[1].strip() == r2
    code, _, err = run(cli, api, "can-replicate-from-gtid", "-i", r1, "-d", r1)
    assert code == 1 and "cannot replicate from itself" in err

    pool = api.get(f"heuristic-cluster-pool-instances/{master}")
    assert (
        pool.status_code == 404
        and pool.json()["Code"] == "ERROR"
        and "not supported" in pool.json()["Message"]
    )
    assert api.get(f"heuristic-cluster-pool-instances/{master}/web").status_code == 404

    snap = api.get("snapshot-topologies").json()
    assert snap["Code"] == "OK" and snap["Message"] == "Topology Snapshot completed"
    assert snap["Details"].startswith("Took ")
    events = api.wait_for(
        "baton/events", lambda r: r.status_code == 200 and r.json(), params={"type": "topology.snapshot"}
    ).json()
    rows = events[0]["data"]["instances"]
    assert {r["instance"]: r["master"] for r in rows} == {
        **{n: master for k, n in names.items() if k != "master"},
        master: "",
    }


def test_raft_without_a_leader(api: ApiProcess, names: dict[str, str], cli: typer.Typer) -> None:
    assert api.get("raft-state").json() == "Candidate"
    health = api.get("raft-health")
    assert health.status_code == 503 and health.json()["Message"] == "unhealthy"
    assert api.get("raft-leader").status_code == 503
    assert api.get("raft-status").json()["Healthy"] is False
    hint = api.get("raft-yield-hint/dc2")
    assert hint.status_code == 404 and "stop (SIGTERM) the leading recovery process" in hint.json()["Message"]
    assert run(cli, api, "raft-health")[0] == 1


def test_reload_configuration(api: ApiProcess, names: dict[str, str], cli: typer.Typer) -> None:
    master = names["master"]
    assert api.get(f"cluster-info/{master}").json()["HasAutomatedMasterRecovery"] is True
    cfg = json.loads(api.config.read_text())
    api.config.write_text(
        json.dumps({**cfg, "RecoverMasterClusterFilters": [], "ListenAddress": "127.0.0.1:1"})
    )
    body = api.get("reload-configuration").json()
    assert body["Code"] == "OK", body
    assert body["Details"]["Applied"] == ["RecoverMasterClusterFilters"]
    assert body["Details"]["RestartNeeded"] == ["ListenAddress"]
    assert "needs a restart: ListenAddress" in body["Message"]
    assert api.get(f"cluster-info/{master}").json()["HasAutomatedMasterRecovery"] is False  # live
    assert "WARNING" in api.logs() and "ListenAddress" in api.logs()
    api.config.write_text(json.dumps({**cfg, "InstancePollSeconds": "five"}))
    bad = api.get("reload-configuration")
    assert bad.status_code == 400 and "InstancePollSeconds" in bad.json()["Message"]
    assert api.get(f"cluster-info/{master}").json()["HasAutomatedMasterRecovery"] is False  # unchanged
    api.config.write_text(json.dumps(cfg))
    code, out, _ = run(cli, api, "reload-configuration")
    assert code == 0 and "applied live: RecoverMasterClusterFilters" in out
    assert api.get(f"cluster-info/{master}").json()["HasAutomatedMasterRecovery"] is True
    # SIGHUP does the same
    api.config.write_text(json.dumps({**cfg, "RecoverMasterClusterFilters": []}))
    api.proc.send_signal(signal.SIGHUP)
    after = api.wait_for(f"cluster-info/{master}", lambda r: r.json()["HasAutomatedMasterRecovery"] is False)
    assert after.json()["HasAutomatedMasterRecovery"] is False and api.proc.poll() is None
    api.config.write_text(json.dumps(cfg))
    api.proc.send_signal(signal.SIGHUP)
    after = api.wait_for(f"cluster-info/{master}", lambda r: r.json()["HasAutomatedMasterRecovery"] is True)
    assert after.json()["HasAutomatedMasterRecovery"] is True


@pytest.mark.timeout(180)
async def test_locate_gtid_errant_with_a_recovery_leader(
    api: ApiProcess, names: dict[str, str], sandbox4: Sandbox, cli: typer.Typer
) -> None:
    r2, r3 = names["replica2"], names["replica3"]
    async with recovery_leader(api.nats_url, sandbox4) as leader:
        assert (await asyncio.to_thread(api.get, "raft-state")).json() == "Leader"
        assert "submit-test" in (await asyncio.to_thread(api.get, "raft-leader")).json()
        health = await asyncio.to_thread(api.get, "raft-health")
        assert health.status_code == 200 and health.json() == "healthy"
        status = (await asyncio.to_thread(api.get, "raft-status")).json()
        assert status["Healthy"] is True and status["BatonEpoch"] == leader.status()["epoch"]

        none = await asyncio.to_thread(api.get, f"locate-gtid-errant/{hp(r2)}")
        assert (
            none.status_code == 409
            and none.json()["Message"] == f"locate-errant-gtid: no errant-gtid on {r2}"
        )

        # an errant transaction on replica3, in the binlog that is current now; then a new binlog
        before = await sandbox4.sql("replica3", "SHOW MASTER STATUS")
        errant_log = before[0]["File"]
        await sandbox4.script(
            "replica3",
            [  # its own domain: a local write in the master's domain would break gtid_strict_mode
                "SET SESSION gtid_domain_id = 7",
                "CREATE DATABASE IF NOT EXISTS errant_q",
                "CREATE TABLE errant_q.t (i INT)",
            ],
        )
        await sandbox4.sql("replica3", "FLUSH BINARY LOGS")
        await sandbox4.sql("master", "CREATE DATABASE IF NOT EXISTS after_errant")
        await sandbox4.wait_gtid(
            "replica3", (await sandbox4.sql("master", "SELECT @@gtid_binlog_pos AS p"))[0]["p"]
        )
        resp = await asyncio.to_thread(api.get, f"locate-gtid-errant/{hp(r3)}")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"Code": "OK", "Message": "located errant GTID", "Details": [errant_log]}
        code, out, _ = await asyncio.to_thread(run, cli, api, "locate-gtid-errant", "-i", r3)
        assert code == 0 and out.split() == [errant_log]

        # the API's Instance shows the errant set (which-gtid-errant) once it has fresh snapshots
        await asyncio.to_thread(publish_topology, sandbox4, api.nats_url)
        server_id = (await sandbox4.sql("replica3", "SELECT @@server_id AS s"))[0]["s"]
        doc = await asyncio.to_thread(
            api.wait_for, f"instance/{hp(r3)}", lambda r: r.json().get("GtidErrant", "") != ""
        )
        assert doc.json()["GtidErrant"] == f"7-{server_id}-2", doc.json()["GtidErrant"]
        code, out, _ = await asyncio.to_thread(run, cli, api, "which-gtid-errant", "-i", r3)
        assert out.strip() == doc.json()["GtidErrant"]
