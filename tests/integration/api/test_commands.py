"""Recovery commands: the API resolves the target, sends a `CommandRequest` on
`baton.cmd.recovery.<verb>` over a real NATS, and maps the `CommandReply` to orchestrator's envelope.

The recovery side is a stand-in responder on the real broker, answering per the contract of
`libs/models/operator.py` with real `RecoveryRecord`s (the recovery service answers the same way).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from nats.aio.msg import Msg

from libs.bus.connection import connect
from libs.models import InstanceKey, InstanceSnapshot
from libs.models.operator import BlockedRecovery, CommandReply, CommandRequest, CommandStatus
from libs.sandbox import Sandbox
from tests.integration.api import builders
from tests.integration.api.conftest import ApiProcess, publish_topology

BLOCKED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def topo(api: ApiProcess, sandbox4: Sandbox) -> Iterator[dict[str, InstanceSnapshot]]:
    snaps = publish_topology(sandbox4, api.nats_url)
    master = str(sandbox4.key("master"))
    api.wait_for("cluster/" + master, lambda r: r.status_code == 200 and len(r.json()) == 4)
    yield dict(zip(sandbox4.names, snaps, strict=True))


@contextlib.asynccontextmanager
async def responder(nats_url: str, successor: InstanceKey, seen: list[CommandRequest]) -> AsyncIterator[None]:
    bus = await connect(nats_url, "recovery-stand-in")

    async def answer(msg: Msg) -> None:
        req = CommandRequest.model_validate_json(msg.data)
        seen.append(req)
        verb = req.verb
        if req.destination is not None and req.destination.port == 65535:
            reply = CommandReply(status=CommandStatus.REFUSED, message="not a valid candidate")
        elif verb in (
            "recover",
            "recover-lite",
            "force-master-failover",
            "force-master-takeover",
            "graceful-master-takeover",
            "graceful-master-takeover-auto",
        ):
            failed = req.instance or InstanceKey.parse(req.cluster or "x:1")
            record = builders.recovery(builders.detection(req.cluster or "", failed), succeed_to=successor)
            outage = 123.0 if verb.startswith("graceful") else None
            reply = CommandReply(
                status=CommandStatus.OK,
                message=f"{verb} done",
                successor=successor,
                recovery=record.model_dump(mode="json"),
                write_outage_ms=outage,
            )
        elif verb == "ack-recoveries":
            reply = CommandReply(status=CommandStatus.OK, acknowledged=["u1", "u2"])
        elif verb == "blocked-recoveries":
            block = BlockedRecovery(
                cluster=req.cluster or "c",
                instance=successor,
                analysis="DeadMaster",
                blocking_uid="u1",
                first_blocked_at=BLOCKED_AT,
                last_blocked_at=BLOCKED_AT + timedelta(seconds=4),
                count=3,
                blocked_until=BLOCKED_AT + timedelta(hours=1),
            )
            reply = CommandReply(status=CommandStatus.OK, blocked=[block])
        else:
            reply = CommandReply(status=CommandStatus.BAD_REQUEST, message=f"unknown verb {verb}")
        await msg.respond(reply.model_dump_json().encode())

    sub = await bus.nc.subscribe("baton.cmd.recovery.>", cb=answer)
    await bus.nc.flush()
    try:
        yield
    finally:
        await sub.unsubscribe()
        await bus.close()


def _hp(key: InstanceKey) -> str:
    return f"{key.host}/{key.port}"


async def test_recovery_commands_round_trip(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    master, successor = topo["master"].key, topo["replica1"].key
    seen: list[CommandRequest] = []
    async with (
        responder(api.nats_url, successor, seen),
        httpx.AsyncClient(base_url=api.api, timeout=30) as http,
    ):
        resp = await http.get(f"/recover/{_hp(master)}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["Details"] == {"Hostname": successor.host, "Port": successor.port}
        assert seen[-1].verb == "recover" and seen[-1].instance == master and seen[-1].cluster == str(master)

        assert (await http.get(f"/recover-lite/{_hp(master)}")).status_code == 200
        assert seen[-1].skip_hooks is True

        resp = await http.get(f"/force-master-failover/{topo['replica2'].key}")
        body = resp.json()
        assert resp.status_code == 200 and body["Details"]["SuccessorKey"]["Port"] == successor.port
        assert body["Details"]["IsSuccessful"] is True and seen[-1].cluster == str(master)

        resp = await http.get(f"/force-master-takeover/{master}/{_hp(successor)}")
        assert resp.status_code == 200 and resp.json()["Details"]["SuccessorKey"]["Port"] == successor.port
        assert seen[-1].verb == "force-master-takeover" and seen[-1].destination == successor

        resp = await http.get(f"/graceful-master-takeover/{master}/{_hp(successor)}")
        assert resp.status_code == 200 and resp.json()["Details"]["BatonWriteOutageMs"] == 123.0
        assert seen[-1].destination == successor
        assert (await http.post(f"/graceful-master-takeover-auto/{master}")).status_code == 200
        assert seen[-1].verb == "graceful-master-takeover-auto" and seen[-1].destination is None

        bad = InstanceKey(host=successor.host, port=65535)
        resp = await http.get(f"/recover/{_hp(master)}/{_hp(bad)}")
        assert resp.status_code == 409 and resp.json()["Message"] == "not a valid candidate"

        resp = await http.get(f"/ack-recovery/cluster/{master}", params={"comment": "checked"})
        assert resp.status_code == 200 and resp.json()["Details"] == 2
        assert (
            seen[-1].scope == "cluster" and seen[-1].comment == "checked" and seen[-1].cluster == str(master)
        )
        assert (
            await http.get(f"/ack-recovery/instance/{_hp(master)}", params={"comment": "x"})
        ).status_code == 200
        assert (await http.get("/ack-all-recoveries", params={"comment": "all good"})).json()["Code"] == "OK"
        assert seen[-1].scope == "all"
        assert (await http.get("/ack-recovery/uid/abc", params={"comment": "y"})).status_code == 200

        (blocked,) = (await http.get("/blocked-recoveries")).json()
        assert blocked == {  # orchestrator's BlockedTopologyRecovery, then Baton's extras
            "FailedInstanceKey": {"Hostname": successor.host, "Port": successor.port},
            "ClusterName": "c",
            "Analysis": "DeadMaster",
            "LastBlockedTimestamp": (BLOCKED_AT + timedelta(seconds=4)).isoformat(),
            "BlockingRecoveryId": 0,  # u1 is not in the read model
            "ClusterAlias": "",
            "BlockingRecoveryUID": "u1",
            "FirstBlockedTimestamp": BLOCKED_AT.isoformat(),
            "BlockedCount": 3,
            "BlockedUntil": (BLOCKED_AT + timedelta(hours=1)).isoformat(),
            "Reason": "",
        }
        resp = await http.get(f"/blocked-recoveries/cluster/{topo['replica2'].key}")
        assert resp.status_code == 200 and resp.json()[0]["ClusterName"] == str(master)
        assert seen[-1].verb == "blocked-recoveries" and seen[-1].cluster == str(master)


async def test_recovery_commands_bad_input(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    master = topo["master"].key
    seen: list[CommandRequest] = []
    async with responder(api.nats_url, master, seen), httpx.AsyncClient(base_url=api.api, timeout=30) as http:
        for path in (
            "/ack-all-recoveries",
            f"/ack-recovery/cluster/{master}",
            "/ack-all-recoveries?comment=%20",
        ):
            resp = await http.get(path)
            assert resp.status_code == 400 and "comment" in resp.json()["Message"], path
        for path in (
            "/force-master-failover/nope",
            "/graceful-master-takeover/nope",
            "/recover/127.0.0.1/1",
            "/ack-recovery/cluster/nope?comment=x",
            f"/graceful-master-takeover/{master}/127.0.0.1/2",
            f"/force-master-takeover/{master}/127.0.0.1/2",
        ):
            resp = await http.get(path)
            assert resp.status_code == 404, (path, resp.text)
        assert (await http.get("/recover/127.0.0.1/99999")).status_code == 400
    assert seen == []  # nothing bad ever reached the recovery leader


async def test_no_recovery_leader_is_503(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    async with httpx.AsyncClient(base_url=api.api, timeout=30) as http:
        resp = await http.get(f"/force-master-failover/{topo['master'].key}")
        assert resp.status_code == 503
        assert resp.json()["Code"] == "ERROR" and "no recovery leader" in resp.json()["Message"]


def test_discover_and_forget(api: ApiProcess, topo: dict[str, InstanceSnapshot], sandbox4: Sandbox) -> None:
    replica = topo["replica3"].key
    resp = api.get(f"async-discover/{_hp(replica)}")
    assert resp.status_code == 200 and resp.json()["Details"]["Key"]["Port"] == replica.port
    resp = api.get(f"forget/{_hp(replica)}")
    assert resp.status_code == 200, resp.text
    assert api.get(f"instance/{_hp(replica)}").status_code == 404
    assert api.get("forget/127.0.0.1/1").status_code == 404
    # a new snapshot (the prober found it again) brings it back
    publish_topology(sandbox4, api.nats_url)
    assert api.wait_for(f"instance/{_hp(replica)}", lambda r: r.status_code == 200).status_code == 200
    events = api.get("baton/events", params={"type": "instance."}).json()
    assert events[0]["type"] == "instance.forgotten" and events[0]["instance"] == str(replica)


async def test_envelope_replies_are_accepted(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    """The recovery's command framework answers orchestrator's envelope itself: passed through."""
    import json

    master = topo["master"].key
    bus = await connect(api.nats_url, "envelope-stand-in")

    async def answer(msg: Msg) -> None:
        verb = msg.subject.rsplit(".", 1)[1]
        if verb == "force-master-failover":
            body: dict[str, object] = {
                "Code": "OK",
                "Message": "failed over",
                "Details": {"SuccessorKey": {"Hostname": "n", "Port": 1}},
            }
        else:
            body = {"Code": "ERROR", "Message": "no such recovery", "Details": None, "Status": 404}
        await msg.respond(json.dumps(body).encode())

    sub = await bus.nc.subscribe("baton.cmd.recovery.>", cb=answer)
    await bus.nc.flush()
    try:
        async with httpx.AsyncClient(base_url=api.api, timeout=30) as http:
            resp = await http.get(f"/force-master-failover/{master}")
            assert resp.status_code == 200 and resp.json()["Details"]["SuccessorKey"]["Port"] == 1
            resp = await http.get("/ack-recovery/uid/zzz", params={"comment": "c"})
            assert resp.status_code == 404 and resp.json()["Message"] == "no such recovery"
    finally:
        await sub.unsubscribe()
        await bus.close()
