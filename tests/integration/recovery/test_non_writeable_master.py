"""Issue 11 item 9 on real sandboxes: RecoverNonWriteableMaster.

Prober + analyzer + recovery in-process (`Stack`), the API as its own process (`start_api`), one
nats-server, real mariadbd. A master set `read_only=1` by hand, with replicas replicating from it, is
orchestrator's NoWriteableMasterStructureWarning: with the key on it is made writable by an audited
recovery (audit-recovery lists it); with the key off nothing changes, and replication-analysis still
reports the structure warning.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from libs.bus.server import NatsServer
from libs.recovery.audit import Outcome, RecoveryKind, RecoveryRecord
from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.api.conftest import start_api
from tests.integration.recovery.harness import writable_masters
from tests.integration.recovery.stack import Events, Stack
from tests.integration.recovery.test_operator import _api_json

CODE = "NoWriteableMasterStructureWarning"


async def _read_only(sb: Sandbox, name: str) -> bool:
    return int((await sb.sql(name, "SELECT @@read_only AS r"))[0]["r"]) == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("key_on", [True, False], ids=["key-on", "key-off"])
async def test_read_only_master_is_made_writable_only_with_recover_non_writeable_master(
    sandbox_factory: SandboxFactory, nats_server: NatsServer, tmp_path: Path, key_on: bool
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    master = sb.key("master")
    config = {"RecoverNonWriteableMaster": key_on}
    store = f"sqlite+aiosqlite:///{tmp_path}/rm.db"
    api = await asyncio.to_thread(start_api, tmp_path, nats_server.url, store, "sqlite", config)
    stack = await Stack(sb, nats_server.url, retry_s=0.3, **config).start()
    assert stack.bus is not None
    events = await Events().start(stack.bus)
    http = httpx.AsyncClient(base_url=api.api, timeout=30)
    try:
        await sb.sql("master", "SET GLOBAL read_only = 1")
        if key_on:
            done = await events.wait("recovery.completed", within=20, code=CODE)
            record = RecoveryRecord.model_validate(done.data["record"])
            assert record.outcome is Outcome.SUCCEEDED, record.reason
            assert record.kind is RecoveryKind.NON_WRITEABLE_MASTER and record.failed == master
            assert record.successor == master and record.promoted_at is not None
            assert [s.name for s in record.steps] == [
                "recheck",
                "pre-failover-hooks",
                f"set-writable:{master}",
                "post-hooks",
            ]
            assert not await _read_only(sb, "master")
            assert await writable_masters(sb, sb.names) == ["master"]
            rows = await _api_json(
                http,
                "/audit-recovery",
                until=lambda rows: any(r.get("UID") == record.uid and r.get("IsSuccessful") for r in rows),
            )
            (row,) = [r for r in rows if r["UID"] == record.uid]
            assert row["AnalysisEntry"]["Analysis"] == CODE and row["IsSuccessful"]
            assert row["SuccessorKey"] == {"Hostname": master.host, "Port": master.port}
            await asyncio.sleep(1.5)  # a fixed problem stays fixed: no second recovery
            assert len(events.matching("recovery.registered", code=CODE)) == 1
        else:
            analysis = await _api_json(
                http,
                f"/replication-analysis/instance/{master.host}/{master.port}",
                until=lambda body: any(CODE in e["StructureAnalysis"] for e in body.get("Details") or []),
            )
            (entry,) = analysis["Details"]
            assert entry["Analysis"] == "NoProblem" and entry["StructureAnalysis"] == [CODE]
            await asyncio.sleep(3.0)  # three poll intervals: the analyzer and the leader had their say
            assert await _read_only(sb, "master")  # nothing changed
            assert not [e for e in events.seen if e.type != "recovery.skipped" or CODE in str(e.data)]
    finally:
        await http.aclose()
        await asyncio.to_thread(api.stop)
        await events.stop()
        await stack.stop()
