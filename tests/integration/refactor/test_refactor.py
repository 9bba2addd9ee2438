"""Issue 14: orchestrator's mutating verbs against a real MariaDB topology (GTID), through the real API
process and a real recovery leader (prober + analyzer + recovery in-process, `Stack`) on one
nats-server. Each scenario moves the topology back to 1 master + 3 direct replicas at its end, so the
module shares one sandbox; the MySQL side is checked on the servers themselves (SHOW SLAVE STATUS)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from typing import Any

import httpx
import pytest

from libs.bus.server import NatsServer
from libs.models import Event, InstanceKey, utcnow
from libs.models.operator import CommandStatus
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.recovery.control import KVControlState
from libs.recovery.record_store import KVRecordStore
from libs.recovery.refactoring import LOCK_WAIT_S
from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from libs.topology.view import group_clusters
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.api.conftest import ApiProcess
from tests.integration.e2e.test_baton_up import baton_cli
from tests.integration.recovery.harness import writable_masters
from tests.integration.recovery.stack import Events, Stack
from tests.integration.refactor.conftest import back_to_star, call, names, path, wait_master

pytestmark = pytest.mark.timeout(300)


async def test_relocate_chains_and_refusals(http: httpx.AsyncClient, sandbox4: Sandbox) -> None:
    sb = sandbox4
    m, r1, r2, r3 = names(sb)
    # relocate below a sibling, and back: Details is the moved instance, already showing its new master
    body = await call(http, "relocate", r2, r1)
    assert body["Message"] == f"Instance {r2} relocated below {r1}"
    assert body["Details"]["Key"] == {"Hostname": r2.host, "Port": r2.port}
    assert body["Details"]["MasterKey"] == {"Hostname": r1.host, "Port": r1.port}
    await wait_master(sb, "replica2", r1)
    # a loop is refused: r1 below its own replica
    body = await call(http, "relocate", r1, r2, status=409)
    assert "replication loop" in body["Message"], body
    # move-up from an intermediate master
    body = await call(http, "move-up", r2)
    assert body["Details"]["MasterKey"]["Port"] == m.port
    await wait_master(sb, "replica2", m)
    # move-up of a master's direct replica: orchestrator's words
    body = await call(http, "move-up", r2, status=409)
    assert body["Message"] == f"master is not a replica itself: {m}"
    # move-below a sibling; not siblings refused
    await call(http, "move-below", r3, r1)
    await wait_master(sb, "replica3", r1)
    body = await call(http, "move-below", r2, r3, status=409)
    assert body["Message"] == f"instances are not siblings: {r2}, {r3}"
    # graceful-master-takeover refusals, in orchestrator's words (nothing changes)
    resp = await http.post(f"/graceful-master-takeover/{m}")
    assert resp.status_code == 409, resp.text
    assert resp.json()["Message"].startswith(
        f"GracefulMasterTakeover: target instance not indicated, auto=false, and master {m} has 2 replicas"
    )
    resp = await http.post(f"/graceful-master-takeover/{m}/{r3.host}/{r3.port}")
    assert resp.status_code == 409, resp.text
    assert resp.json()["Message"] == (
        f"GracefulMasterTakeover: indicated designated instance {r3} must be directly replicating from the "
        f"master {m}"
    )
    # match / move-gtid / repoint variants, then back
    await call(http, "match-up", r3)
    await wait_master(sb, "replica3", m)
    await call(http, "move-gtid", r3, r2)
    await wait_master(sb, "replica3", r2)
    await call(http, "repoint", r3, m)
    await wait_master(sb, "replica3", m)
    await call(http, "match", r3, r1)
    await wait_master(sb, "replica3", r1)
    await call(http, "repoint", r3)  # in place
    await wait_master(sb, "replica3", r1)
    await call(http, "move-up", r3)
    # move-equivalent: Baton keeps no equivalence records
    body = await call(http, "move-equivalent", r3, r1, status=409)
    assert body["Message"].startswith(f"No equivalent coordinates found for {r3}")
    await back_to_star(sb)


async def test_take_master_and_bulk_moves(http: httpx.AsyncClient, sandbox4: Sandbox) -> None:
    sb = sandbox4
    m, r1, r2, r3 = names(sb)
    # take-master: r2 below r1, then r2 takes r1's place: m -> r2 -> r1
    await call(http, "relocate", r2, r1)
    await wait_master(sb, "replica2", r1)
    body = await call(http, "take-master", r2)
    assert body["Message"] == f"{r2} took its master"
    await wait_master(sb, "replica2", m)
    await wait_master(sb, "replica1", r2)
    # ... and back: r1 takes r2's place (m -> r1 -> r2), then r2 moves up
    await call(http, "take-master", r1)
    await wait_master(sb, "replica1", m)
    await wait_master(sb, "replica2", r1)
    await call(http, "move-up", r2)
    # take-siblings, then move-up-replicas
    body = await call(http, "take-siblings", r1)
    assert body["Message"] == f"Took 2 siblings of {r1}"
    assert body["Details"]["Key"]["Port"] == r1.port
    await wait_master(sb, "replica2", r1)
    await wait_master(sb, "replica3", r1)
    body = await call(http, "move-up-replicas", r1)
    assert body["Message"] == f"Moved up 2 replicas of {r1}. New master: {m}"
    await back_to_star(sb)
    # relocate-replicas / move-replicas-gtid / repoint-replicas / match-up-replicas
    await call(http, "relocate-replicas", m, r1)  # r2, r3 below r1 (r1 itself stays)
    await wait_master(sb, "replica2", r1)
    await wait_master(sb, "replica3", r1)
    await call(http, "repoint-replicas", r1)  # in place
    await call(http, "move-replicas-gtid", r1, m)
    await wait_master(sb, "replica2", m)
    await wait_master(sb, "replica3", m)
    resp = await http.post(path("relocate-replicas", m, r1) + f"?pattern={r3.port}$")
    assert resp.status_code == 200, resp.text
    await wait_master(sb, "replica3", r1)
    await call(http, "match-up-replicas", r1)
    await back_to_star(sb)
    # regroup-replicas: one replica becomes the others' master; undone with relocate-replicas
    body = await call(http, "regroup-replicas", m)
    candidate = InstanceKey.model_validate({"host": body["Details"]["Key"]["Hostname"],
                                            "port": body["Details"]["Key"]["Port"]})  # fmt: skip
    assert candidate in (r1, r2, r3)
    for name in ("replica1", "replica2", "replica3"):
        if sb.key(name) != candidate:
            await wait_master(sb, name, candidate)
    await call(http, "relocate-replicas", candidate, m)
    await back_to_star(sb)


async def test_make_co_master_and_its_undo(http: httpx.AsyncClient, sandbox4: Sandbox) -> None:
    sb = sandbox4
    m, r1, _, _ = names(sb)
    await call(http, "set-writeable", r1)
    body = await call(http, "make-co-master", r1, status=409)
    assert (
        body["Message"]
        == f"instance {r1} is not read-only; first make it read-only before making it co-master"
    )
    await call(http, "set-read-only", r1)
    rows = await sb.sql("replica1", "SELECT @@global.read_only AS r")
    assert int(rows[0]["r"]) == 1
    body = await call(http, "make-co-master", r1)
    assert body["Message"] == f"{r1} made co-master of {m}"
    await wait_master(sb, "master", r1)
    body = await call(http, "make-co-master", r1, status=409)
    assert "is already co master of" in body["Message"]
    # undo: stop the master's replication, then reset it
    body = await call(http, "reset-replica", m, status=409)
    assert body["Message"] == f"Cannot reset replication on: {m} because replication threads are not stopped"
    await call(http, "stop-replica", m)
    await call(http, "reset-replica", m)
    await wait_master(sb, "master", None)
    await back_to_star(sb)


async def test_replication_control(http: httpx.AsyncClient, sandbox4: Sandbox) -> None:
    sb = sandbox4
    m, _, _, r3 = names(sb)

    async def threads() -> tuple[str, str]:
        row = (await sb.sql("replica3", "SHOW SLAVE STATUS"))[0]
        return row["Slave_IO_Running"], row["Slave_SQL_Running"]

    body = await call(http, "stop-replica", r3)
    assert body["Details"]["Slave_SQL_Running"] is False
    assert await threads() == ("No", "No")
    await call(http, "start-replica", r3)
    await wait_master(sb, "replica3", m)
    await call(http, "restart-replica", r3)
    await wait_master(sb, "replica3", m)
    await call(http, "stop-slave-nice", r3)
    assert await threads() == ("No", "No")
    await call(http, "start-slave", r3)
    await wait_master(sb, "replica3", m)
    # delay-replication
    await call(http, "delay-replication", r3, extra="7")
    row = (await sb.sql("replica3", "SHOW SLAVE STATUS"))[0]
    assert int(row["SQL_Delay"]) == 7
    await call(http, "delay-replication", r3, extra="0")
    await call(http, "delay-replication", r3, extra="soon", status=400)
    # skip-query: a statement that fails on the replica only is skipped
    await sb.script(
        "master", ["CREATE DATABASE refactor_skip", "CREATE TABLE refactor_skip.t (id INT PRIMARY KEY)"]
    )
    position = (await sb.sql("master", "SELECT @@global.gtid_binlog_pos AS p"))[0]["p"]
    await sb.wait_gtid("replica3", position)
    await sb.script("replica3", ["SET SESSION sql_log_bin = 0", "INSERT INTO refactor_skip.t VALUES (1)"])
    await sb.sql("master", "INSERT INTO refactor_skip.t VALUES (1)")  # a duplicate key on replica3 only
    deadline = time.monotonic() + 20
    while (await threads())[1] != "No":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert int((await sb.sql("replica3", "SHOW SLAVE STATUS"))[0]["Last_SQL_Errno"]) == 1062
    await call(http, "skip-query", r3)
    await wait_master(sb, "replica3", m)
    await sb.sql("master", "DROP DATABASE refactor_skip")
    # detach / reattach the master host
    await call(http, "detach-replica-master-host", r3)
    row = (await sb.sql("replica3", "SHOW SLAVE STATUS"))[0]
    assert row["Master_Host"] == f"//{m.host}"
    body = await call(http, "detach-replica-master-host", r3, status=409)
    assert body["Message"] == f"instance already detached: {r3}"
    await call(http, "reattach-replica-master-host", r3)
    await wait_master(sb, "replica3", m)
    body = await call(http, "detach-replica", r3, status=409)
    assert "detach-replica-master-host" in body["Message"]
    # read-only, binary logs, semi-sync
    await call(http, "set-writeable", r3)
    assert int((await sb.sql("replica3", "SELECT @@global.read_only AS r"))[0]["r"]) == 0
    await call(http, "set-read-only", r3)
    assert int((await sb.sql("replica3", "SELECT @@global.read_only AS r"))[0]["r"]) == 1
    before = (await sb.sql("master", "SHOW MASTER STATUS"))[0]["File"]
    await call(http, "flush-binary-logs", m)
    after = (await sb.sql("master", "SHOW MASTER STATUS"))[0]["File"]
    assert after != before
    future = after.rsplit(".", 1)[0] + ".999999"
    body = await call(http, "purge-binary-logs", m, extra=future, status=409)
    assert body["Message"].startswith(f"Unsafe to purge binary logs on {m} up to {future} because replica")
    for name in ("replica1", "replica2", "replica3"):
        await wait_master(sb, name, m)
    # the replicas' snapshots show `after` once they read the rotated log: purging up to it is then
    # allowed (MariaDB itself keeps a log until its binlog checkpoint is written: ask again until gone)
    deadline = time.monotonic() + 30
    while True:
        resp = await http.post(path("purge-binary-logs", m, extra=after))
        assert resp.status_code in (200, 409), resp.text
        logs = [r["Log_name"] for r in await sb.sql("master", "SHOW BINARY LOGS")]
        if resp.status_code == 200 and before not in logs:
            break
        assert time.monotonic() < deadline, (resp.text, logs)
        await asyncio.sleep(0.5)
    assert after in logs
    for verb, var, node, key, want in (
        ("enable-semi-sync-master", "rpl_semi_sync_master_enabled", "master", m, 1),
        ("disable-semi-sync-master", "rpl_semi_sync_master_enabled", "master", m, 0),
        ("enable-semi-sync-replica", "rpl_semi_sync_slave_enabled", "replica3", r3, 1),
        ("disable-semi-sync-replica", "rpl_semi_sync_slave_enabled", "replica3", r3, 0),
    ):
        await call(http, verb, key)
        value = (await sb.sql(node, f"SELECT @@global.{var} AS v"))[0]["v"]
        assert int(value) == want, (verb, value)
    await wait_master(sb, "replica3", m)
    # restart-replica-statements: statements only
    body = await call(http, "restart-replica-statements", r3)
    assert body["Details"] == [
        "stop slave io_thread;", "stop slave sql_thread;", "start slave io_thread;", "start slave sql_thread;"
    ]  # fmt: skip
    await back_to_star(sb)


async def test_not_gtid_refusal(http: httpx.AsyncClient, sandbox4: Sandbox) -> None:
    sb = sandbox4
    m, r1, _, r3 = names(sb)
    await sb.script("replica3", ["STOP SLAVE", "CHANGE MASTER TO MASTER_USE_GTID = no", "START SLAVE"])
    try:
        deadline = time.monotonic() + 20
        while True:
            resp = await http.post(path("relocate", r3, r1))
            if resp.status_code == 409 and "not GTID compatible or not using GTID" in resp.json()["Message"]:
                break
            assert resp.status_code == 409 and time.monotonic() < deadline, resp.text  # until probed
            await asyncio.sleep(0.3)
        assert resp.json()["Message"] == f"Instances {r3}, {r1} not GTID compatible or not using GTID"
    finally:
        await sb.script(
            "replica3", ["STOP SLAVE", "CHANGE MASTER TO MASTER_USE_GTID = slave_pos", "START SLAVE"]
        )
    await wait_master(sb, "replica3", m)
    await back_to_star(sb)  # errant transactions: test_errant.py


async def test_a_refactoring_and_a_recovery_never_hold_one_cluster_at_once(
    stack: Stack, sandbox4: Sandbox
) -> None:
    """The per-cluster lock is the recovery record in baton_recoveries: an open recovery makes an
    operation `busy`; an operation's own record is closed when it ends (lock released), is no recovery
    (no recovery event), and one a dead leader left open is closed by the sweep as aborted (not resumed
    as a failover) and leaves no anti-flapping block."""
    sb = sandbox4
    m, r1, r2, _ = names(sb)
    assert stack.bus is not None and stack.recovery is not None
    view = next(v for v in group_clusters(stack.recovery.memory.states.values()) if v.get(m))
    store = KVRecordStore(stack.bus.js)
    events = await Events().start(stack.bus)
    audited: list[Event] = []

    async def on_audit(msg: Any) -> None:
        audited.append(Event.model_validate_json(msg.data))

    sub = await stack.bus.nc.subscribe("baton.audit.refactor", cb=on_audit)
    try:
        # a recovery holds the cluster (its epoch is above the leader's: the sweep leaves it alone)
        running = RecoveryRecord(
            incident="lock-test", code="DeadMaster", cluster=view.name, alias=view.alias, failed=m,
            epoch=10**9, epochs=[10**9], started_at=utcnow(),
        )  # fmt: skip
        await store.register(running)
        started = time.monotonic()
        reply = await stack.command("relocate", instance=r2, destination=r1)
        assert reply.status is CommandStatus.BUSY, reply  # after waiting LOCK_WAIT_S for it
        assert time.monotonic() - started >= LOCK_WAIT_S - 0.5
        assert f"recovery {running.uid} of {view.alias} is still open" in reply.message
        assert (await sb.sql("replica2", "SHOW SLAVE STATUS"))[0]["Master_Port"] == m.port
        # an operation waits for a recovery that ends within LOCK_WAIT_S, then runs
        waiting = asyncio.create_task(stack.command("relocate", instance=r2, destination=r1))
        await asyncio.sleep(1.0)
        assert not waiting.done()
        assert (await sb.sql("replica2", "SHOW SLAVE STATUS"))[0]["Master_Port"] == m.port
        running.close(Outcome.FAILED, "test over", utcnow())
        await store.save(running)
        reply = await waiting
        assert reply.status is CommandStatus.OK, reply
        await wait_master(sb, "replica2", r1)
        # the lock is released, and the cluster's latest record is again the recovery it displaced
        current = await store.current(view.alias)
        assert current is not None and current.uid == running.uid and not current.active
        await stack.command("relocate", instance=r2, destination=m)
        await wait_master(sb, "replica2", m)
        assert not events.matching("recovery.registered"), "an operation is not a recovery"
        outcomes = [(e.type, e.data["verb"], e.data["by"], e.data["outcome"]) for e in audited]
        assert outcomes == [
            ("refactor.busy", "relocate", "test", "busy"),
            ("refactor.succeeded", "relocate", "test", "succeeded"),
            ("refactor.succeeded", "relocate", "test", "succeeded"),
        ]
        assert audited[1].data["steps"][0]["name"] == f"move:{r2}" and audited[1].epoch
        # an operation left open by a dead leader (older epoch): the sweep closes it, aborted
        left = RecoveryRecord(
            incident="operation:left", code="Operation", cluster=view.name, alias=view.alias, failed=r2,
            command="operation:relocate", epoch=0, epochs=[0], started_at=utcnow(),
        )  # fmt: skip
        await store.register(left)
        deadline = time.monotonic() + 20
        while (found := await store.current(view.alias)) is not None and found.active:
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.2)
        assert found is not None and found.uid == left.uid and found.outcome is Outcome.ABORTED
        assert found.kind is RecoveryKind.OPERATION
        assert "closed, not resumed" in found.reason
        assert not any(s.name.startswith(("promote", "recheck")) for s in found.steps)
        control = KVControlState(stack.bus.js)
        assert not [b for b in await control.blocks(utcnow()) if b.uid == left.uid]
        reply = await stack.command("start-replica", instance=r2)
        assert reply.status is CommandStatus.OK, reply
    finally:
        await sub.unsubscribe()
        await events.stop()
    await back_to_star(sb)


async def test_cli_verbs_and_the_paths_orchestrator_client_sends(
    api: ApiProcess, http: httpx.AsyncClient, sandbox4: Sandbox
) -> None:
    """`baton <verb>` prints what orchestrator-client prints (`instance<master` for a move, keys for a
    bulk move) and exits 1 with orchestrator's words on a refusal; the bulk verbs without a destination
    answer the path orchestrator-client builds then (`<verb>/host/port/`, trailing slash)."""
    sb = sandbox4
    m, r1, r2, _ = names(sb)

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(baton_cli, api.api, *args)

    done = await cli("relocate", "-i", str(r2), "-d", str(r1))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{r2}<{r1}"
    await wait_master(sb, "replica2", r1)
    refused = await cli("relocate", "-i", str(r1), "-d", str(r2))
    assert refused.returncode == 1 and "replication loop" in refused.stderr
    done = await cli("move-up", "-i", str(r2))
    assert done.returncode == 0 and done.stdout.strip() == f"{r2}<{m}", done.stderr
    assert (await cli("relocate", "-i", str(r2))).returncode == 2  # no destination: usage
    done = await cli("take-siblings", "-i", str(r1))
    assert done.returncode == 0 and done.stdout.strip() == f"{r1}<{m}", done.stderr
    resp = await http.get(path("move-up-replicas", r1) + "/")  # orchestrator-client's path
    assert resp.status_code == 200, resp.text
    assert sorted(_port(d["Key"]) for d in resp.json()["Details"]) == sorted(
        k.port for k in (sb.key("replica2"), sb.key("replica3"))
    )
    done = await cli("stop-replica", "-i", str(r2))
    assert done.returncode == 0 and done.stdout.strip() == str(r2), done.stderr
    done = await cli("start-replica", "-i", str(r2))
    assert done.returncode == 0, done.stderr
    done = await cli("restart-replica-statements", "-i", str(r2), "-q", "SET GLOBAL max_connections = 200")
    assert done.returncode == 0, done.stderr
    assert "SET GLOBAL max_connections = 200;" in done.stdout.splitlines()
    done = await cli("delay-replication", "-i", str(r2), "-S", "0")
    assert done.returncode == 0, done.stderr
    await back_to_star(sb)


def _port(key: dict[str, Any]) -> int:
    return int(key["Port"])


@pytest.mark.skipif(
    not os.environ.get("ORCHESTRATOR_CLIENT"),
    reason="set ORCHESTRATOR_CLIENT to orchestrator's own orchestrator-client (kept outside the repository)",
)
async def test_orchestrator_client_itself(
    api: ApiProcess, http: httpx.AsyncClient, sandbox4: Sandbox
) -> None:
    """orchestrator's own client, unchanged, against Baton: the verbs print what they print against
    orchestrator, and a refusal exits 1 with orchestrator's words on stderr."""
    sb = sandbox4
    m, r1, r2, r3 = names(sb)
    client = os.environ["ORCHESTRATOR_CLIENT"]

    async def oc(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ORCHESTRATOR_API": api.api}
        return await asyncio.to_thread(
            subprocess.run, [client, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )

    async def ok(*args: str) -> str:
        done = await oc(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout.strip()

    assert await ok("-c", "relocate", "-i", str(r2), "-d", str(r1)) == f"{r2}<{r1}"
    refused = await oc("-c", "relocate", "-i", str(r1), "-d", str(r2))
    assert refused.returncode == 1 and "replication loop" in refused.stderr
    assert await ok("-c", "move-up", "-i", str(r2)) == f"{r2}<{m}"
    assert await ok("-c", "take-siblings", "-i", str(r1)) == f"{r1}<{m}"
    assert sorted((await ok("-c", "move-up-replicas", "-i", str(r1))).split()) == sorted([str(r2), str(r3)])
    assert await ok("-c", "stop-slave", "-i", str(r3)) == str(r3)
    assert await ok("-c", "start-replica", "-i", str(r3)) == str(r3)
    assert await ok("-c", "set-read-only", "-i", str(r3)) == str(r3)
    delayed = json.loads(await ok("-c", "delay-replication", "-i", str(r3), "-S", "0"))
    assert delayed["Key"] == {"Hostname": r3.host, "Port": r3.port}
    # the client pipes `print_response | print_details` under pipefail: the echo into a reader that
    # never reads may die of SIGPIPE (141), as against orchestrator; what it printed is what counts
    done = await oc(
        "-c", "restart-replica-statements", "-i", str(r3), "-q", "SET GLOBAL max_connections = 200"
    )
    assert done.returncode in (0, 141), done.stderr
    assert "SET GLOBAL max_connections = 200;" in json.loads(done.stdout)
    refused = await oc("-c", "graceful-master-takeover", "-i", str(m))
    assert refused.returncode == 1
    assert "GracefulMasterTakeover: target instance not indicated" in refused.stderr
    refused = await oc("-c", "purge-binary-logs", "-i", str(m), "--binlog", "mysql-bin.999999")
    assert refused.returncode == 1 and "Unsafe to purge binary logs on" in refused.stderr
    await back_to_star(sb)


@pytest.mark.timeout(180)
async def test_a_failover_waits_for_the_operation_holding_its_cluster(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    """The other direction of the lock, with a real dead master: while an operation's record holds the
    cluster the failover is refused (`operation`, retried), nothing is promoted; once the operation ends
    the retried detection fails the master over."""
    sb = await sandbox_factory(master_replicas(2))
    m = sb.key("master")
    stack = await Stack(sb, nats_server.url, retry_s=0.3).start()
    assert stack.bus is not None and stack.recovery is not None
    events = await Events().start(stack.bus)
    try:
        view = next(v for v in group_clusters(stack.recovery.memory.states.values()) if v.get(m))
        store = KVRecordStore(stack.bus.js)
        held = RecoveryRecord(
            incident="operation:held", code="Operation", cluster=view.name, alias=view.alias,
            failed=sb.key("replica1"), command="operation:relocate", epoch=10**9, epochs=[10**9],
            started_at=utcnow(),
        )  # fmt: skip
        await store.register(held)
        sb.kill("master")
        skipped = await events.wait("recovery.skipped", within=30, skip_code="operation")
        assert "holds the lock of" in skipped.data["record"]["reason"]
        await asyncio.sleep(2.0)  # retried every 0.3 s meanwhile, refused each time
        assert await writable_masters(sb, ["replica1", "replica2"]) == []
        assert not events.matching("recovery.registered")
        held.close(Outcome.SUCCEEDED, "moved", utcnow())
        await store.save(held)
        done = await events.wait("recovery.completed", within=60)
        successor = done.data["record"]["successor"]
        assert successor is not None
        assert len(await writable_masters(sb, ["replica1", "replica2"])) == 1
    finally:
        await events.stop()
        await stack.stop()
