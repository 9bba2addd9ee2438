"""Issue 15: errant GTIDs end to end on a real MariaDB topology (1 master + 3 replicas, gtid_strict_mode),
through the real API process and a real recovery leader (`Stack`) on one nats-server.

A stray write on a replica (root ignores read_only, as a DBA's mistake would) is reported by
which-gtid-errant (the instance's `GtidErrant`) and by the master's ErrantGTIDStructureWarning, located
in the replica's binary log by locate-gtid-errant, then fixed, and reported clean with replication
intact (threads running, a later write arrives, the same data everywhere):
- by gtid-errant-inject-empty, while the master has not moved on in the errant domain (MariaDB: a no-op
  statement logged on the master under the errant GTID);
- by gtid-errant-reset-master, once the master wrote in that domain after the errant write: the replica's
  SQL thread stops (gtid_strict_mode, 1950), injecting is refused with the reason, the reset mends it.
orchestrator's refusals (reset-master on the master, and on a replica with replicas of its own) leave
everything as it was. Every operation is audited on `baton.audit.refactor` and holds the cluster's lock
only while it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from libs.models import Event, InstanceKey
from libs.mysql.errant_sql import PLACEHOLDER_TABLE
from libs.recovery.record_store import KVRecordStore
from libs.sandbox import Sandbox
from libs.topology.view import group_clusters
from tests.integration.recovery.stack import Stack
from tests.integration.refactor.conftest import call, names, path, wait_master

pytestmark = pytest.mark.timeout(300)
WARNING = "ErrantGTIDStructureWarning"


@pytest.fixture
async def audited(stack: Stack) -> AsyncIterator[list[Event]]:
    """Every `baton.audit.refactor` event published while the test runs."""
    assert stack.bus is not None
    events: list[Event] = []

    async def on_audit(msg: Any) -> None:
        events.append(Event.model_validate_json(msg.data))

    sub = await stack.bus.nc.subscribe("baton.audit.refactor", cb=on_audit)
    try:
        yield events
    finally:
        await sub.unsubscribe()


async def var(sb: Sandbox, name: str, variable: str) -> str:
    return str((await sb.sql(name, f"SELECT @@global.{variable} AS v"))[0]["v"])


async def errant_of(http: httpx.AsyncClient, key: InstanceKey) -> str:
    """which-gtid-errant: the instance's `GtidErrant` as the API shows it."""
    resp = await http.get(f"/instance/{key.host}/{key.port}")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["GtidErrant"])


async def warned(http: httpx.AsyncClient) -> list[tuple[str, int]]:
    """The instances whose replication-analysis entry carries ErrantGTIDStructureWarning."""
    resp = await http.get("/replication-analysis")
    assert resp.status_code == 200, resp.text
    return [
        (e["AnalyzedInstanceKey"]["Hostname"], e["AnalyzedInstanceKey"]["Port"])
        for e in resp.json()["Details"]
        if WARNING in e["StructureAnalysis"]
    ]


async def wait_reported(
    http: httpx.AsyncClient, key: InstanceKey, errant: str, master: InstanceKey, within: float = 40.0
) -> None:
    """The API shows `errant` as the instance's GtidErrant, and the master's warning iff it is not ""."""
    deadline = time.monotonic() + within
    while True:
        shown, warnings = await errant_of(http, key), await warned(http)
        if shown == errant and (((master.host, master.port) in warnings) == bool(errant)):
            return
        assert time.monotonic() < deadline, (key, shown, errant, warnings)
        await asyncio.sleep(0.3)


async def wait_applied(sb: Sandbox, within: float = 30.0) -> str:
    """Every replica has applied the master's position, both threads running; the position."""
    position = await var(sb, "master", "gtid_binlog_pos")
    for name in ("replica1", "replica2", "replica3"):
        await sb.wait_gtid(name, position, within)
        row = (await sb.sql(name, "SHOW SLAVE STATUS"))[0]
        assert (row["Slave_IO_Running"], row["Slave_SQL_Running"]) == ("Yes", "Yes"), (name, row)
    return position


async def same_data(sb: Sandbox) -> None:
    """The test table is the same everywhere, and no errant schema is left anywhere."""
    sums = {n: (await sb.sql(n, "CHECKSUM TABLE errant_e2e.t"))[0]["Checksum"] for n in sb.names}
    assert len(set(sums.values())) == 1, sums
    for n in sb.names:
        schemas = {r["Database"] for r in await sb.sql(n, "SHOW DATABASES")}
        assert not schemas & {"errant_a", "errant_b"}, (n, schemas)


def outcomes(events: list[Event], verb: str) -> list[str]:
    return [str(e.data["outcome"]) for e in events if e.data.get("verb") == verb]


async def wait_audit(events: list[Event], verb: str, want: list[str], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while outcomes(events, verb) != want:
        assert time.monotonic() < deadline, (verb, outcomes(events, verb), want)
        await asyncio.sleep(0.1)


async def test_errant_transaction_reported_located_and_fixed(
    http: httpx.AsyncClient, sandbox4: Sandbox, stack: Stack, audited: list[Event]
) -> None:
    sb = sandbox4
    m, r1, r2, r3 = names(sb)
    ids = {n: int(await var(sb, n, "server_id")) for n in sb.names}
    await sb.script(
        "master",
        ["CREATE DATABASE errant_e2e", "CREATE TABLE errant_e2e.t (id INT PRIMARY KEY, v VARCHAR(16))"],
    )
    await sb.sql("master", "INSERT INTO errant_e2e.t VALUES (1, 'start')")
    await wait_applied(sb)
    for key in (r1, r2, r3):
        await wait_reported(http, key, "", m)
    # a replica of replica3, so that reset-master on replica3 has a reason to refuse
    await call(http, "relocate", r2, r3)
    await wait_master(sb, "replica2", r3)

    # -- 1. a stray write on replica3, in the master's domain under its own server_id -----------------
    errant_log = (await sb.sql("replica3", "SHOW MASTER STATUS"))[0]["File"]
    await sb.script("replica3", ["CREATE DATABASE errant_a", "DROP DATABASE errant_a"])
    errant = await var(sb, "replica3", "gtid_binlog_pos")
    domain, server_id, seq = (int(x) for x in errant.split("-"))
    assert (domain, server_id) == (0, ids["replica3"]) and seq > 0, errant
    await wait_reported(http, r3, errant, m)  # which-gtid-errant and the analysis
    assert await errant_of(http, r2) == ""  # replica2 got them from its own master: not errant there
    resp = await http.get(path("locate-gtid-errant", r3))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"Code": "OK", "Message": "located errant GTID", "Details": [errant_log]}
    resp = await http.get(path("locate-gtid-errant", r1))
    assert resp.status_code == 409 and resp.json()["Message"] == f"locate-errant-gtid: no errant-gtid on {r1}"

    # orchestrator's refusals, nothing touched
    body = await call(http, "gtid-errant-reset-master", m, status=409)
    assert (
        body["Message"] == f"gtid-errant-reset-master will not operate on {m} because no errant GTID is found"
    )
    body = await call(http, "gtid-errant-reset-master", r3, status=409)
    assert body["Message"] == (
        f"gtid-errant-reset-master will not operate on {r3} because it has 1 replicas. Expecting no replicas"
    )
    body = await call(http, "gtid-errant-inject-empty", m, status=409)
    assert (
        body["Message"] == f"gtid-errant-inject-empty will not operate on {m} because no errant GTID is found"
    )
    assert await var(sb, "replica3", "gtid_binlog_pos") == errant
    assert errant_log in [r["Log_name"] for r in await sb.sql("replica3", "SHOW BINARY LOGS")]

    # -- 2. gtid-errant-inject-empty: the master logs a no-op under the errant GTID -------------------
    body = await call(http, "gtid-errant-inject-empty", r3)
    assert body["Message"] == f"Have injected 1 transactions on cluster master {m}"
    assert await var(sb, "master", "gtid_binlog_pos") == errant
    events = await sb.sql(
        "master", "SHOW BINLOG EVENTS IN %s", ((await sb.sql("master", "SHOW MASTER STATUS"))[0]["File"],)
    )
    gtid_event, statement = events[-2], events[-1]
    assert gtid_event["Info"] == f"GTID {errant}" and gtid_event["Server_id"] == ids["replica3"], gtid_event
    assert statement["Info"].endswith(f"FOR FLUSH TABLES {PLACEHOLDER_TABLE}"), statement
    await wait_reported(http, r3, "", m)
    # replication intact: a later write on the master reaches every replica (replica2 through replica3)
    await sb.sql("master", "INSERT INTO errant_e2e.t VALUES (2, 'after inject')")
    position = await wait_applied(sb)
    assert position.startswith("0-") and int(position.split("-")[2]) == seq + 1, position
    await same_data(sb)
    for key in (r1, r2, r3):
        await wait_reported(http, key, "", m)
    await call(http, "relocate", r2, m)
    await wait_master(sb, "replica2", m)

    # -- 3. a stray write on replica1, then the master writes in that domain: replica1 cannot apply it --
    await sb.script("replica1", ["CREATE DATABASE errant_b", "DROP DATABASE errant_b"])
    errant = await var(sb, "replica1", "gtid_binlog_pos")
    await sb.sql("master", "INSERT INTO errant_e2e.t VALUES (3, 'during errant')")
    master_seq = int((await var(sb, "master", "gtid_binlog_pos")).split("-")[2])
    deadline = time.monotonic() + 30
    while (row := (await sb.sql("replica1", "SHOW SLAVE STATUS"))[0])["Slave_SQL_Running"] != "No":
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.1)
    assert int(row["Last_SQL_Errno"]) == 1950, row  # gtid_strict_mode: out-of-order sequence number
    await wait_reported(http, r1, errant, m)
    body = await call(http, "gtid-errant-inject-empty", r1, status=409)
    assert body["Message"] == (
        f"gtid-errant-inject-empty will not operate on {r1}: {m} logged domain 0 up to seq {master_seq}, "
        f"which {r1} has not applied (its own {errant} is ahead of them, so with gtid_strict_mode it "
        "cannot): use gtid-errant-reset-master"
    )

    # -- 4. gtid-errant-reset-master: replica1's binlog state becomes what it replicated; it resumes ----
    body = await call(http, "gtid-errant-reset-master", r1)
    assert body["Message"] == f"Removed errant GTID on {r1} and issued a RESET MASTER"
    await wait_master(sb, "replica1", m, within=30)
    await sb.sql("master", "INSERT INTO errant_e2e.t VALUES (4, 'after reset')")
    position = await wait_applied(sb)
    assert await var(sb, "replica1", "gtid_binlog_pos") == position
    await same_data(sb)
    for key in (r1, r2, r3):
        await wait_reported(http, key, "", m)

    # -- every operation audited; the cluster's lock released ------------------------------------------
    await wait_audit(audited, "gtid-errant-inject-empty", ["refused", "succeeded", "refused"])
    await wait_audit(audited, "gtid-errant-reset-master", ["refused", "refused", "succeeded"])
    done = [
        e
        for e in audited
        if e.data.get("verb") == "gtid-errant-reset-master" and e.type == "refactor.succeeded"
    ]
    steps = done[0].data["steps"]
    assert [s["name"] for s in steps] == [f"gtid-errant-reset-master:{r1}"], steps
    assert "RESET MASTER" in steps[0]["detail"] and "gtid_binlog_state" in steps[0]["detail"], steps
    assert done[0].data["by"] and done[0].instance == str(r1)
    assert stack.bus is not None and stack.recovery is not None
    view = next(v for v in group_clusters(stack.recovery.memory.states.values()) if v.get(m))
    current = await KVRecordStore(stack.bus.js).current(view.alias)
    assert current is None or not current.active, current
