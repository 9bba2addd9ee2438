"""Issue 6 on real sandboxes: prober + analyzer + recovery in-process (`Stack`), one nats-server.

Filters, anti-flapping blocks and acknowledgements, the global switch and downtime, intermediate
masters, old-master fencing, and the operator's commands (recover, force-master-failover,
graceful-master-takeover-auto) sent as the API sends them (`CommandRequest` on baton.cmd.recovery.*).
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import nats.js.errors
import pytest

from libs.bus.provision import BLOCKS, DOWNTIME, SETTINGS
from libs.bus.server import NatsServer
from libs.bus.subjects import kv_key
from libs.models import InstanceKey, utcnow
from libs.models.operator import (
    GLOBAL_RECOVERIES_KEY,
    AckScope,
    BlockedRecovery,
    CommandStatus,
    GlobalRecoveries,
)
from libs.recovery.audit import Outcome, RecoveryRecord
from libs.recovery.downtime import Downtime
from libs.recovery.record_store import RECOVERIES
from libs.sandbox import SANDBOX_DB, Sandbox
from libs.sandbox.spec import chain, master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.api.conftest import start_api
from tests.integration.e2e.test_baton_up import baton_cli
from tests.integration.recovery.harness import wait_replicating_from, writable_masters, write_rows
from tests.integration.recovery.stack import Events, Stack, master_of
from tests.integration.recovery.writer import Writer, prepare


async def _started(sb: Sandbox, url: str, **settings: object) -> tuple[Stack, Events]:
    stack = await Stack(sb, url, retry_s=0.3, **settings).start()
    assert stack.bus is not None
    return stack, await Events().start(stack.bus)


async def _put(stack: Stack, bucket: str, name: str, value: bytes, ttl_s: float | None = None) -> None:
    assert stack.bus is not None
    ttl = max(1, math.ceil(ttl_s)) if ttl_s is not None else None
    await stack.bus.js.publish(f"$KV.{bucket}.{kv_key(name)}", value, msg_ttl=ttl)


async def _wait_master(stack: Stack, alias: str, old: InstanceKey, within: float = 10.0) -> InstanceKey:
    assert stack.bus is not None
    deadline = time.monotonic() + within
    while True:
        record = await master_of(stack.bus.js, alias)
        if record is not None and record.master != old:
            return record.master
        assert time.monotonic() < deadline, f"no new master for {alias} within {within:g}s"
        await asyncio.sleep(0.05)


async def _known_as_master(stack: Stack, key: InstanceKey, within: float = 5.0) -> None:
    """Until the probers have seen `key` promoted (killed before that, it dies as a replica)."""
    assert stack.recovery is not None
    deadline = time.monotonic() + within
    while True:
        state = stack.recovery.memory.states.get(key)
        if state is not None and state.last_seen is not None and state.last_seen.replication is None:
            await asyncio.sleep(0.2)  # the analyzer folds the same snapshot
            return
        assert time.monotonic() < deadline, f"{key} not seen as a master within {within:g}s"
        await asyncio.sleep(0.05)


async def _block_keys(stack: Stack) -> list[str]:
    assert stack.bus is not None
    kv = await stack.bus.js.key_value(BLOCKS)
    try:
        entries = [await kv.get(k) for k in await kv.keys()]
    except nats.js.errors.NoKeysError:
        return []
    return [e.key for e in entries if e.value]


async def _read_only(sb: Sandbox, name: str) -> bool:
    return int((await sb.sql(name, "SELECT @@read_only AS r"))[0]["r"]) == 1


@pytest.mark.timeout(60)
async def test_filtered_cluster_is_detected_not_recovered_then_recover_and_old_master_fenced(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    master = sb.key("master")
    stack, events = await _started(sb, nats_server.url, RecoverMasterClusterFilters=["alias=not-this-one"])
    try:
        sb.kill("master")
        skipped = await events.wait("recovery.skipped", skip_code="filtered")
        record = skipped.data["record"]
        assert (
            record["code"] in ("DeadMaster", "DeadMasterAndSomeReplicas") and record["outcome"] == "skipped"
        )
        assert f"cluster {master} (alias {master}) is not in RecoverMasterClusterFilters" in record["reason"]
        await asyncio.sleep(0.5)  # nothing happens on its own
        assert await writable_masters(sb, sb.names) == []
        assert stack.bus is not None
        seeded = await master_of(stack.bus.js, str(master))  # the leader's seed, if any: the old master
        assert seeded is None or (seeded.master == master and seeded.recovery_uid is None)

        # The operator's recover: forced past the filter.
        healthy = await stack.command("recover", cluster=str(master), instance=master)
        assert healthy.status is CommandStatus.OK, healthy.message
        successor = healthy.successor
        assert successor is not None
        new = sb.name_of(successor)
        assert new is not None and await writable_masters(sb, sb.names) == [new]
        await wait_replicating_from(sb, ({"replica1", "replica2"} - {new}).pop(), successor)
        done = RecoveryRecord.model_validate(healthy.recovery)
        assert done.forced and done.requested_by == "test" and done.outcome is Outcome.SUCCEEDED
        not_broken = await stack.command("recover", cluster=str(successor), instance=successor)
        assert not_broken.status is CommandStatus.REFUSED and "not broken" in not_broken.message

        # The old master comes back writable: fenced (read_only), reported as an event and in the record.
        await sb.restart("master")
        fenced = await events.wait("recovery.fenced", within=10, uid=done.uid)
        assert fenced.data["record"]["fenced_at"] is not None
        assert await _read_only(sb, "master")
        assert await sb.sql("master", "SHOW SLAVE STATUS") == []  # never repointed
        kv = await stack.bus.js.key_value(RECOVERIES)
        deadline = time.monotonic() + 5
        while True:
            stored = RecoveryRecord.model_validate_json((await kv.get(kv_key(str(master)))).value or b"")
            if stored.fenced_at is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert stored.uid == done.uid and stored.fenced_at is not None
    finally:
        await events.stop()
        await stack.stop()


async def _api_json(http: httpx.AsyncClient, path: str, within: float = 10.0, until: Any = bool) -> Any:
    """GET `path` of the API until `until(json)` holds (the read model follows the streams)."""
    deadline = time.monotonic() + within
    while True:
        resp = await http.get(path)
        body = resp.json() if resp.status_code == 200 else None
        if body is not None and until(body):
            return body
        assert time.monotonic() < deadline, f"{path}: {resp.status_code} {resp.text[:300]}"
        await asyncio.sleep(0.1)


async def _refused(stack: Stack, within: float = 5.0, **fields: Any) -> list[BlockedRecovery]:
    deadline = time.monotonic() + within
    while not (listed := (await stack.command("blocked-recoveries", **fields)).blocked):
        assert time.monotonic() < deadline, "blocked-recoveries stayed empty"
        await asyncio.sleep(0.05)
    return listed


@pytest.mark.timeout(90)
async def test_second_failure_inside_the_block_period_waits_for_an_acknowledgement(
    sandbox_factory: SandboxFactory, nats_server: NatsServer, tmp_path: Path
) -> None:
    sb = await sandbox_factory(master_replicas(3))
    store = f"sqlite+aiosqlite:///{tmp_path}/rm.db"
    api = await asyncio.to_thread(start_api, tmp_path, nats_server.url, store, "sqlite")
    stack, events = await _started(
        sb, nats_server.url, RecoveryPeriodBlockSeconds=600, MasterFailoverLostInstancesDowntimeMinutes=10
    )
    http = httpx.AsyncClient(base_url=api.api, timeout=30)
    try:
        first = await stack.failover()
        assert first.record.outcome is Outcome.SUCCEEDED, first.record.reason
        s1 = first.published.master
        assert stack.bus is not None
        downtime = await (await stack.bus.js.key_value(DOWNTIME)).get(kv_key(str(sb.key("master"))))
        assert Downtime.model_validate_json(downtime.value or b"").reason == "lost-in-recovery"
        assert (await stack.command("blocked-recoveries")).blocked == []  # a block, but nothing refused yet

        name = sb.name_of(s1)
        assert name is not None
        await _known_as_master(stack, s1)
        sb.kill(name)  # the new master dies too: flapping
        blocked = await events.wait("recovery.skipped", skip_code="blocked", failed=str(s1))
        assert first.record.uid in blocked.data["record"]["reason"]
        assert blocked.data["record"]["blocked_by"] == first.record.uid

        # blocked-recoveries lists the refused attempt (orchestrator's BlockedTopologyRecovery), and its
        # last refusal moves with every retry although no new `skipped` event is published
        (attempt,) = await _refused(stack, cluster=str(s1))  # kept right after the event is published
        assert attempt.instance == s1 and attempt.blocking_uid == first.record.uid
        assert attempt.cluster == str(s1) and attempt.analysis == blocked.data["record"]["code"]
        assert attempt.last_blocked_at is not None and attempt.first_blocked_at is not None
        audit = await _api_json(http, f"/audit-recovery/uid/{first.record.uid}")
        (row,) = await _api_json(http, "/blocked-recoveries")
        assert row["FailedInstanceKey"] == {"Hostname": s1.host, "Port": s1.port}
        assert row["ClusterName"] == str(s1) and row["Analysis"] == attempt.analysis
        assert row["BlockingRecoveryId"] == audit[0]["Id"] > 0
        assert row["BlockingRecoveryUID"] == first.record.uid
        await asyncio.sleep(1.0)  # blocked means blocked: nobody was promoted meanwhile
        others = [n for n in ("replica1", "replica2", "replica3") if n != name]
        assert await writable_masters(sb, others) == []
        assert await master_of(stack.bus.js, str(s1)) is None
        (later,) = (await stack.command("blocked-recoveries")).blocked
        assert later.last_blocked_at is not None and later.last_blocked_at > attempt.last_blocked_at
        assert later.count > attempt.count
        assert later.first_blocked_at == attempt.first_blocked_at
        (moved,) = await _api_json(http, f"/blocked-recoveries/cluster/{s1}")
        assert moved["LastBlockedTimestamp"] > row["LastBlockedTimestamp"]
        assert moved["FirstBlockedTimestamp"] == row["FirstBlockedTimestamp"]
        assert len(events.matching("recovery.skipped", skip_code="blocked")) == 1  # retries are quiet
        cli = await asyncio.to_thread(baton_cli, api.base, "blocked-recoveries", "-a", str(s1))
        assert cli.returncode == 0, cli.stderr
        (line,) = cli.stdout.splitlines()
        assert f" {s1} {attempt.analysis} {s1} blocked by {first.record.uid} x" in line

        ack = await stack.command(
            "ack-recoveries", scope=AckScope.CLUSTER, cluster=str(s1), alias=str(s1), comment="checked: go on"
        )
        assert ack.status is CommandStatus.OK and ack.acknowledged == [first.record.uid], ack.message
        assert (await stack.command("blocked-recoveries")).blocked == []
        assert await _api_json(http, "/blocked-recoveries", until=lambda b: b == []) == []
        assert (await asyncio.to_thread(baton_cli, api.base, "blocked-recoveries")).stdout == ""
        acked = await events.wait("recovery.acknowledged", uid=first.record.uid)
        assert acked.data["by"] == "test" and acked.data["comment"] == "checked: go on"
        s2 = await _wait_master(stack, str(s1), s1)
        new = sb.name_of(s2)
        assert new in others and await writable_masters(sb, others) == [new]
        await wait_replicating_from(sb, (set(others) - {new}).pop(), s2)
    finally:
        await http.aclose()
        await events.stop()
        await stack.stop()
        await asyncio.to_thread(api.stop)


@pytest.mark.timeout(60)
async def test_global_switch_and_downtime_hold_a_recovery_until_lifted(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    master = sb.key("master")
    stack, events = await _started(sb, nats_server.url)
    try:
        off = GlobalRecoveries(enabled=False, by="ops")
        await _put(stack, SETTINGS, GLOBAL_RECOVERIES_KEY, off.model_dump_json().encode())
        now = utcnow()
        hold = Downtime(instance=str(master), reason="planned maintenance", owner="ops", started_at=now,
                        ends_at=now + timedelta(seconds=4))  # fmt: skip
        await _put(stack, DOWNTIME, str(master), hold.model_dump_json().encode(), ttl_s=4)
        sb.kill("master")
        disabled = await events.wait("recovery.skipped", skip_code="disabled")
        assert "disabled globally by ops" in disabled.data["record"]["reason"]
        assert any(k.startswith("deferred.") for k in await _block_keys(stack))  # a next leader retries it

        on = GlobalRecoveries(enabled=True, by="ops")
        await _put(stack, SETTINGS, GLOBAL_RECOVERIES_KEY, on.model_dump_json().encode())
        downtimed = await events.wait("recovery.skipped", skip_code="downtimed")
        assert "planned maintenance" in downtimed.data["record"]["reason"]
        assert await writable_masters(sb, sb.names) == []

        successor = await _wait_master(stack, str(master), master, within=10)  # the downtime expired
        assert utcnow() >= hold.ends_at
        new = sb.name_of(successor)
        assert new is not None and await writable_masters(sb, sb.names) == [new]
        assert len(events.matching("recovery.skipped", skip_code="downtimed")) == 1  # retries are quiet
        assert not [k for k in await _block_keys(stack) if k.startswith("deferred.")]
    finally:
        await events.stop()
        await stack.stop()


@pytest.mark.timeout(60)
async def test_dead_intermediate_master_replicas_replicate_again(
    sandbox_factory: SandboxFactory, nats_server: NatsServer, tmp_path: Path
) -> None:
    sb = await sandbox_factory(chain())
    out = tmp_path / "hook.out"
    stack, events = await _started(
        sb,
        nats_server.url,
        RecoverIntermediateMasterClusterFilters=["*"],
        PostIntermediateMasterFailoverProcesses=[
            f"echo {{failureType}} {{failedPort}} {{successorPort}} {{instanceType}} >> {out}"
        ],
    )
    try:
        sb.kill("intermediate")
        done = await events.wait("recovery.completed", failed=str(sb.key("intermediate")))
        record = RecoveryRecord.model_validate(done.data["record"])
        assert record.outcome is Outcome.SUCCEEDED, record.reason
        assert record.code.startswith("DeadIntermediateMaster")
        assert record.successor == sb.key("replica3")  # a valid sibling before the master
        for name in ("replica1", "replica2"):
            await wait_replicating_from(sb, name, sb.key("replica3"))
        pos = await write_rows(sb, "master", 700, 3, "after intermediate master died")
        for name in ("replica1", "replica2"):
            await sb.wait_gtid(name, pos, within=10)
        hook = out.read_text().split()
        assert hook == [record.code, str(sb.key("intermediate").port), str(sb.key("replica3").port),
                        "intermediate-master"]  # fmt: skip
    finally:
        await events.stop()
        await stack.stop()


@pytest.mark.timeout(90)
async def test_graceful_takeover_under_writes_then_force_failover(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    master, target = sb.key("master"), sb.key("replica1")
    await prepare(sb, "master")
    stack, events = await _started(sb, nats_server.url, RecoveryPeriodBlockSeconds=600)
    writer = Writer([sb.key(n) for n in sb.names]).start()
    try:
        await writer.wait_acked(50)
        reply = await stack.command(
            "graceful-master-takeover-auto", cluster=str(master), alias=str(master), destination=target
        )
        assert reply.status is CommandStatus.OK, reply.message
        assert reply.successor == target
        outage = reply.write_outage_ms
        assert outage is not None and 0 < outage < 1000, outage
        await writer.wait_acked(50)  # writes resume on the new master
        await writer.finish()
        print(f"write outage {outage:.1f} ms (client saw {writer.max_gap_s * 1000:.1f} ms)")

        record = RecoveryRecord.model_validate(reply.recovery)
        assert record.write_outage_ms == outage and record.acknowledged and record.command.endswith("-auto")
        assert await writable_masters(sb, sb.names) == ["replica1"]
        await wait_replicating_from(sb, "master", target)
        await wait_replicating_from(sb, "replica2", target)
        assert await _read_only(sb, "master")
        rows = await sb.sql("replica1", f"SELECT id FROM {SANDBOX_DB}.counter")
        present = {int(r["id"]) for r in rows}
        missing = [i for i in writer.acked if i not in present]
        assert not missing, f"{len(missing)} acknowledged inserts lost, e.g. {missing[:5]}"
        assert (await stack.command("blocked-recoveries")).blocked == []  # it acknowledged itself
        assert events.matching("recovery.acknowledged", uid=record.uid)

        # Panic on a healthy cluster: the master (now replica1) is failed over anyway.
        forced = await stack.command("force-master-failover", cluster=str(target), alias=str(master))
        assert forced.status is CommandStatus.OK, forced.message
        assert forced.successor in (master, sb.key("replica2"))
        assert forced.successor is not None
        new = sb.name_of(forced.successor)
        assert await writable_masters(sb, sb.names) == [new]
        assert await _read_only(sb, "replica1")  # read_only first, then failed over
        steps = [s["name"] for s in (forced.recovery or {})["steps"]]
        assert steps.index(f"read-only:{target}") < steps.index("stop-io"), steps
    finally:
        await writer.finish()
        await events.stop()
        await stack.stop()


@pytest.mark.timeout(90)
async def test_force_master_takeover_promotes_the_designated_direct_replica(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    master, designated = sb.key("master"), sb.key("replica2")
    await prepare(sb, "master")
    stack, events = await _started(sb, nats_server.url, RecoveryPeriodBlockSeconds=600)
    try:
        missing = await stack.command("force-master-takeover", cluster=str(master), alias=str(master))
        assert missing.status is CommandStatus.BAD_REQUEST, missing.message
        # replica2 is a direct replica and not the one candidate choice would pick first (replica1 wins
        # ties by name): the designation decides
        reply = await stack.command(
            "force-master-takeover", cluster=str(master), alias=str(master), destination=designated
        )
        assert reply.status is CommandStatus.OK, reply.message
        assert reply.successor == designated
        assert await writable_masters(sb, sb.names) == ["replica2"]
        assert await _read_only(sb, "master")  # alive: made read-only first, as force-master-failover
        assert (reply.recovery or {})["command"] == "force-master-takeover"
        await wait_replicating_from(sb, "replica1", designated)

        # the old master no longer replicates from anyone: not a direct child of the new master
        refused = await stack.command(
            "force-master-takeover", cluster=str(designated), alias=str(master), destination=master
        )
        assert refused.status is CommandStatus.REFUSED
        assert refused.message.startswith(f"You may only promote a direct child of the master {designated}.")
    finally:
        await events.stop()
        await stack.stop()
