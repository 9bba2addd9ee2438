"""The re-check, table-driven: what it probes (`recheck_keys`) and what the fresh analysis means
(`recheck_verdict`), and which replicas the plan leaves out of the drain (`unreachable_replicas`)."""

from __future__ import annotations

from typing import Any

import pytest

from libs.models import InstanceKey
from libs.topology.analysis import Finding
from libs.topology.codes import Analysis
from libs.topology.recheck import Recheck, recheck_keys, recheck_verdict, unreachable_replicas
from libs.topology.view import InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r

DEAD = frozenset({Analysis.DEAD_MASTER, Analysis.DEAD_MASTER_AND_SOME_REPLICAS})
IM = InstanceKey.parse("im:3306")


def finding(code: Analysis = Analysis.DEAD_MASTER, *, instance: InstanceKey = MASTER, **kw: Any) -> Finding:
    fields: dict[str, Any] = {
        "code": code,
        "cluster": str(MASTER),
        "alias": "test",
        "instance": instance,
        "is_master": True,
        "reachable": False,
        "priority": 1,
        "actionable": True,
        "reason": f"{code.value} reason",
    }
    fields.update(kw)
    return Finding(**fields)


OTHER = finding(instance=k(7))  # the same code on another instance: never counts


@pytest.mark.parametrize(
    ("name", "findings", "forced", "force_failover", "outcome", "code", "text"),
    [
        ("still dead", [finding()], False, False, Recheck.PROCEED, "DeadMaster",
         "still DeadMaster: DeadMaster reason"),
        ("changed kind, still handled", [finding(Analysis.DEAD_MASTER_AND_SOME_REPLICAS)], False, False,
         Recheck.PROCEED, "DeadMasterAndSomeReplicas", "still DeadMasterAndSomeReplicas"),
        ("nothing found", [], False, False, Recheck.ALREADY_FIXED, None,
         f"already fixed: fresh analysis of {MASTER} finds no problem"),
        ("only another instance broken", [OTHER], False, False, Recheck.ALREADY_FIXED, None,
         "finds no problem"),
        ("changed to an unhandled code", [finding(Analysis.UNREACHABLE_MASTER)], False, False,
         Recheck.ALREADY_FIXED, None, "finds UnreachableMaster"),
        ("skippable (downtimed), automated", [finding(skippable=True, downtimed=True)], False, False,
         Recheck.ALREADY_FIXED, None, "finds DeadMaster"),
        ("skippable (downtimed), forced by the operator", [finding(skippable=True, downtimed=True)], True,
         False, Recheck.PROCEED, "DeadMaster", "still DeadMaster"),
        ("not actionable, even forced", [finding(actionable=False)], True, False, Recheck.ALREADY_FIXED, None,
         "finds DeadMaster"),
        ("force-master-failover of a healthy master", [], True, True, Recheck.PROCEED, None,
         "forced failover (fresh analysis: no problem)"),
        ("force-master-failover says what it saw", [finding(), OTHER], True, True, Recheck.PROCEED, None,
         "forced failover (fresh analysis: DeadMaster)"),
        ("first handled finding wins", [finding(Analysis.UNREACHABLE_MASTER), finding()], False, False,
         Recheck.PROCEED, "DeadMaster", "still DeadMaster"),
    ],
)  # fmt: skip
def test_recheck_verdict(
    name: str,
    findings: list[Finding],
    forced: bool,
    force_failover: bool,
    outcome: Recheck,
    code: str | None,
    text: str,
) -> None:
    verdict = recheck_verdict(findings, MASTER, DEAD, forced=forced, force_failover=force_failover)
    assert verdict.outcome is outcome, name
    assert text in verdict.text, (name, verdict.text)
    got = verdict.finding.code.value if verdict.finding is not None else None
    assert got == code, name


def _known(*states: InstanceState) -> dict[InstanceKey, InstanceState]:
    return {s.key: s for s in states}


def _under(state: InstanceState, source: InstanceKey) -> InstanceState:
    def move(snap: Any) -> Any:
        rep = snap.replication
        return snap.model_copy(update={"replication": rep.model_copy(update={"master": source})})

    seen = move(state.last_seen) if state.last_seen is not None else None
    return state.model_copy(update={"last_probe": move(state.last_probe), "last_seen": seen})


@pytest.mark.parametrize(
    ("name", "failed", "finding_replicas", "siblings", "expected"),
    [
        ("a dead master: itself and its known replicas", MASTER, (), False, [MASTER, k(7), k(8)]),
        ("replicas the finding names are probed too", MASTER, (k(9),), False, [MASTER, k(7), k(8), k(9)]),
        ("an intermediate master: also its master and siblings", k(7), (), True, [MASTER, k(7), k(8), k(9)]),
        ("no siblings asked: only its own replicas", k(7), (), False, [k(7), k(9)]),
    ],
)
def test_recheck_keys(
    name: str,
    failed: InstanceKey,
    finding_replicas: tuple[InstanceKey, ...],
    siblings: bool,
    expected: list[InstanceKey],
) -> None:
    # 7 and 8 replicate from MASTER; 9 replicates from 7 (7 is an intermediate master)
    known = _known(r(7), r(8), _under(r(9), k(7)))
    found = finding(instance=failed, replicas=finding_replicas) if finding_replicas else None
    assert recheck_keys(known, failed, found, siblings=siblings) == expected, name


def test_recheck_keys_finds_the_master_from_the_finding_when_memory_has_no_state() -> None:
    found = finding(instance=k(5), master=MASTER)
    assert recheck_keys(_known(r(7)), k(5), found, siblings=True) == [k(5), MASTER, k(7)]


def test_unreachable_replicas_are_those_whose_latest_probe_failed() -> None:
    view = cluster(r(7), r(8, reachable=False), r(9, reachable=False))
    down = unreachable_replicas(view, MASTER)
    assert sorted(down) == [k(8), k(9)]
    assert all(not snap.reachable and snap.probed_at <= NOW for snap in down.values())
    assert unreachable_replicas(cluster(r(7)), MASTER) == {}
