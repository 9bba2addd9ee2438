"""The recovery reads the operator's KV state (rules, downtime, blocks, deferred) reliably and fails
closed on entries it cannot decode; on a real nats-server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from libs.bus.connection import Bus, connect
from libs.bus.provision import BLOCKS, CANDIDATES, DOWNTIME, SETTINGS, provision
from libs.bus.server import NatsServer
from libs.bus.subjects import kv_key
from libs.models import InstanceKey, PromotionRule, utcnow
from libs.models.operator import GLOBAL_RECOVERIES_KEY, GlobalRecoveries
from libs.recovery.control import KVControlState, block_key
from libs.recovery.downtime import Downtime
from libs.recovery.options import parse_registered
from libs.topology.plan import RegisteredRule
from services.recovery.wiring import _candidates

A, B, C = InstanceKey.parse("db-a:3306"), InstanceKey.parse("db-b:3306"), InstanceKey.parse("db-c:3306")


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "control-test") as b:
        await provision(b.js)
        yield b


async def test_registered_rules_are_all_read_and_an_undecodable_one_is_must_not(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    kv = await bus.js.key_value(CANDIDATES)
    later = utcnow() + timedelta(hours=1)
    await kv.put(
        kv_key(str(A)),
        RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=later).model_dump_json().encode(),
    )
    await kv.put(kv_key(str(B)), b"not json")
    await kv.put(
        kv_key(str(C)), RegisteredRule(rule=PromotionRule.PREFER, expires_at=later).model_dump_json().encode()
    )
    await kv.delete(kv_key(str(C)))
    with caplog.at_level(logging.ERROR):
        for _ in range(200):  # the read that once answered "no rules"
            rules = parse_registered(await _candidates(bus.js), utcnow())
            assert {k: r.rule for k, r in rules.items()} == {
                A: PromotionRule.MUST_NOT,
                B: PromotionRule.MUST_NOT,
            }
    assert any(kv_key(str(B)) in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_an_undecodable_downtime_still_downtimes(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    kv = await bus.js.key_value(DOWNTIME)
    now = utcnow()
    good = Downtime(
        instance=str(A), reason="maint", owner="ops", started_at=now, ends_at=now + timedelta(hours=1)
    )
    await kv.put(kv_key(str(A)), good.model_dump_json().encode())
    await kv.put(kv_key(str(B)), b'{"instance": "db-b:3306"}')
    with caplog.at_level(logging.ERROR):
        found = await KVControlState(bus.js).downtimes([A, B, C], now)
    assert set(found) == {A, B}
    assert found[A] == good and "undecodable" in found[B].reason
    assert any(kv_key(str(B)) in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_an_undecodable_block_blocks_its_scope_until_deleted(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    control = KVControlState(bus.js)
    key = block_key("cluster", str(A))
    await bus.js.publish(f"$KV.{BLOCKS}.{key}", b"garbage", msg_ttl=60)
    await bus.js.publish(f"$KV.{BLOCKS}.deferred.{kv_key(str(C))}.DeadMaster", b"garbage", msg_ttl=60)
    now = utcnow()
    with caplog.at_level(logging.ERROR):
        blocks = await control.blocks(now)
        assert await control.deferred() == []
    assert len(blocks) == 1
    block = blocks[0]
    assert (block.scope, block.cluster, block.instance, block.key) == ("cluster", str(A), A, key)
    assert block.active(now)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(key in m for m in logged) and any("deferred." in m for m in logged)
    await control.delete_block(block)  # what ack-recoveries does
    assert await control.blocks(now) == []


async def test_an_undecodable_global_switch_disables_automated_recoveries(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    control = KVControlState(bus.js)
    kv = await bus.js.key_value(SETTINGS)
    assert await control.global_recoveries() is None  # absent: enabled
    await kv.put(kv_key(GLOBAL_RECOVERIES_KEY), GlobalRecoveries(enabled=True).model_dump_json().encode())
    state = await control.global_recoveries()
    assert state is not None and state.enabled
    await kv.put(kv_key(GLOBAL_RECOVERIES_KEY), b'{"enabled": "maybe"}')
    with caplog.at_level(logging.ERROR):
        state = await control.global_recoveries()
    assert state is not None and not state.enabled
    assert "undecodable" in state.by
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"{SETTINGS}/{GLOBAL_RECOVERIES_KEY}" in m and "disabled" in m for m in errors), errors
