"""The policy gates (global switch, filters, ignored hosts, downtime, anti-flapping), table-driven."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.models.operator import GlobalRecoveries
from libs.recovery.audit import FORCE_MASTER_FAILOVER, Outcome, new_record
from libs.recovery.control import Block, MemoryControlState
from libs.recovery.downtime import Downtime
from libs.recovery.fence import StaticFence
from libs.recovery.gates import GateContext
from libs.recovery.policy import Policy, block_for, policy_gates
from libs.topology.analysis import analyze
from libs.topology.detection import Detection, DetectionState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r
from tests.unit.recovery.fakes import detection
from tests.unit.topology.chain_builders import IM, chain, sibling

DET = detection(cluster(r(1), r(2)), "inc-1")  # DeadMaster of 127.0.0.1:23306, alias "test"
IM_FINDING = next(f for f in analyze(chain(sibling(2)), NOW) if f.instance == IM)
IM_DET = Detection(incident="inc-im", state=DetectionState.ACTIVE, finding=IM_FINDING,
                   first_evidence_at=NOW, evidence_at=NOW, detected_at=NOW)  # fmt: skip
ALL = Policy(master_filters=("*",), intermediate_filters=("*",))


def downtime(key: object, minutes: float = 10) -> Downtime:
    return Downtime(instance=str(key), reason="maintenance", owner="ops", started_at=NOW,
                    ends_at=NOW + timedelta(minutes=minutes))  # fmt: skip


def block(**kw: object) -> Block:
    values: dict[str, object] = {
        "scope": "cluster",
        "cluster": str(MASTER),
        "alias": "test",
        "instance": MASTER,
        "analysis": "DeadMaster",
        "incident": "inc-0",
        "uid": "u0",
        "blocked_at": NOW - timedelta(minutes=1),
        "blocked_until": NOW + timedelta(hours=1),
    }
    values.update(kw)
    return Block.model_validate(values)


def control(switch: bool | None = None, downtimes: tuple[Downtime, ...] = (), blocks: tuple[Block, ...] = ()):  # type: ignore[no-untyped-def]
    state = MemoryControlState()
    if switch is not None:
        state.switch = GlobalRecoveries(enabled=switch, changed_at=NOW, by="ops")
    for d in downtimes:
        from libs.models import InstanceKey

        state.downtime[InstanceKey.parse(d.instance)] = d
    for b in blocks:
        state.block[b.key] = b
    return state


CASES = [
    # name, policy, control, detection, forced/command, expected code (None: passes), text
    ("all allowed", ALL, control(), DET, "", None, ""),
    ("switch on", ALL, control(switch=True), DET, "", None, ""),
    ("switch off", ALL, control(switch=False), DET, "", "disabled", "disabled globally by ops"),
    ("switch off, forced", ALL, control(switch=False), DET, "recover", None, ""),
    ("no filters", Policy(), control(), DET, "", "filtered", "not in RecoverMasterClusterFilters"),
    ("filter by alias", Policy(master_filters=("alias=test",)), control(), DET, "", None, ""),
    ("other alias", Policy(master_filters=("alias=other",)), control(), DET, "", "filtered",
     "cluster 127.0.0.1:23306 (alias test) is not in RecoverMasterClusterFilters"),
    ("filtered, forced", Policy(), control(), DET, "recover", None, ""),
    ("IM filters are separate", Policy(master_filters=("*",)), control(), IM_DET, "", "filtered",
     "RecoverIntermediateMasterClusterFilters"),
    ("ignored host", ALL.model_copy(update={"ignore_hostname_filters": ("^127\\.",)}), control(), DET, "",
     "ignored", "RecoveryIgnoreHostnameFilters"),
    ("ignored host, recover", ALL.model_copy(update={"ignore_hostname_filters": ("^127\\.",)}), control(),
     DET, "recover", "ignored", ""),
    ("ignored host, force failover", ALL.model_copy(update={"ignore_hostname_filters": ("^127\\.",)}),
     control(), DET, FORCE_MASTER_FAILOVER, None, ""),
    ("master downtimed", ALL, control(downtimes=(downtime(MASTER),)), DET, "", "downtimed",
     "downtimed until"),
    ("downtime over", ALL, control(downtimes=(downtime(MASTER, -1),)), DET, "", None, ""),
    ("a replica downtimed: master recovered", ALL, control(downtimes=(downtime(k(1)),)), DET, "", None, ""),
    ("downtimed, forced", ALL, control(downtimes=(downtime(MASTER),)), DET, "recover", None, ""),
    ("all IM replicas downtimed", ALL, control(downtimes=(downtime(k(11)), downtime(k(12)))), IM_DET, "",
     "downtimed", "all replicas"),
    ("cluster blocked", ALL, control(blocks=(block(),)), DET, "", "blocked", "acknowledge"),
    ("blocked by alias", ALL, control(blocks=(block(cluster="old:1"),)), DET, "", "blocked", ""),
    ("blocked: the failed master is the last successor", ALL,
     control(blocks=(block(cluster="old:1", alias="old", successor=MASTER),)), DET, "", "blocked", ""),
    ("other cluster's block", ALL, control(blocks=(block(cluster="old:1", alias="old"),)), DET, "", None, ""),
    ("expired block", ALL, control(blocks=(block(blocked_until=NOW - timedelta(seconds=1)),)), DET, "",
     None, ""),
    ("the block of the same incident", ALL, control(blocks=(block(incident="inc-1"),)), DET, "", None, ""),
    ("blocked, forced", ALL, control(blocks=(block(),)), DET, "recover", None, ""),
    ("cluster block does not block an IM", ALL, control(blocks=(block(),)), IM_DET, "", None, ""),
    ("IM instance block", ALL, control(blocks=(block(scope="instance", instance=IM),)), IM_DET, "", "blocked",
     ""),
    ("another IM's block", ALL, control(blocks=(block(scope="instance", instance=k(2)),)), IM_DET, "", None,
     ""),
    ("no anti-flapping", ALL.model_copy(update={"block_seconds": 0}), control(blocks=(block(),)), DET, "",
     None, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "policy", "state", "det", "command", "code", "text"), CASES, ids=[c[0] for c in CASES]
)
async def test_policy_gates(name, policy, state, det, command, code, text) -> None:  # type: ignore[no-untyped-def]
    record = new_record(det, epoch=3, node="n", now=NOW, command="" if command == "recover" else command)
    record.forced = bool(command)
    ctx = GateContext(det, record, None, StaticFence(3), NOW)
    reason = None
    for gate in policy_gates(policy, state):
        reason = await gate(ctx)
        if reason is not None:
            break
    if code is None:
        assert reason is None, reason
    else:
        assert reason is not None and getattr(reason, "code", None) == code, reason
        assert text in reason
        assert getattr(reason, "by", "") == ("u0" if code == "blocked" else "")  # who blocked it


@pytest.mark.parametrize(
    ("outcome", "command", "scope"),
    [
        (Outcome.SUCCEEDED, "", "cluster"),
        (Outcome.FAILED, "", "cluster"),
        (Outcome.ABORTED, FORCE_MASTER_FAILOVER, "cluster"),
        (Outcome.ALREADY_FIXED, "", None),
        (Outcome.SKIPPED, "", None),
        (Outcome.SUCCEEDED, "graceful-master-takeover-auto", None),  # acknowledges itself
    ],
)
def test_block_for(outcome: Outcome, command: str, scope: str | None) -> None:
    record = new_record(DET, epoch=1, node="n", now=NOW, command=command)
    record.successor = k(1)
    record.close(outcome, "x", NOW)
    made = block_for(record, 600, NOW)
    if scope is None:
        assert made is None
        return
    assert made is not None and made.scope == scope and made.uid == record.uid
    assert made.blocked_until == NOW + timedelta(seconds=600)
    assert made.successor == (k(1) if outcome is Outcome.SUCCEEDED else None)
    assert block_for(record, 0, NOW) is None


def test_intermediate_master_recoveries_block_the_instance() -> None:
    record = new_record(IM_DET, epoch=1, node="n", now=NOW)
    record.close(Outcome.SUCCEEDED, "x", NOW)
    made = block_for(record, 60, NOW)
    assert made is not None and made.scope == "instance" and made.key.startswith("instance.")
