"""The command registry's request/reply handling (no NATS): decoding, leader check, dispatch."""

from __future__ import annotations

from typing import Any

from libs.models.operator import CommandRequest, CommandStatus, RecoveryVerb, RefactorVerb
from libs.recovery.audit import RecoveryRecord
from libs.recovery.control import MemoryControlState
from libs.recovery.fence import StaticFence
from libs.recovery.manual import Operations
from services.recovery.verbs import VERBS, answer
from tests.unit.candidate.builders import MASTER, cluster, r
from tests.unit.recovery.fakes import rig


class State:
    def status(self) -> dict[str, Any]:
        return {"leader": True}


def ops(held: bool = True) -> Operations:
    t = rig(cluster(r(1), r(2)))
    fence = StaticFence(4)
    if not held:
        fence.lose()

    async def run(record: RecoveryRecord) -> RecoveryRecord:
        return await t.pipeline.drive(record, fence)

    return Operations(t.pipeline, fence, MemoryControlState(), t.events.acknowledged, run)


def test_every_verb_the_api_sends_is_registered() -> None:
    assert set(VERBS) == {v.value for v in RecoveryVerb} | {v.value for v in RefactorVerb}


async def test_answers() -> None:
    status = await answer(ops(), State(), "status", b"")
    assert status.status is CommandStatus.OK and status.details == {"leader": True}
    bad = await answer(ops(), State(), "recover", b"{not json")
    assert bad.status is CommandStatus.BAD_REQUEST
    body = CommandRequest(verb="recover", instance=MASTER).model_dump_json().encode()
    deposed = await answer(ops(held=False), State(), "recover", body)
    assert deposed.status is CommandStatus.REFUSED and "not the recovery leader" in deposed.message
    done = await answer(ops(), State(), "recover", body)
    assert done.status is CommandStatus.OK and done.successor is not None, done.message
    listed = await answer(ops(), State(), "blocked-recoveries", b"")
    assert listed.status is CommandStatus.OK and listed.blocked == []
