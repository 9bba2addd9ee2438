"""VerifyReplicationFilters (orchestrator's CanReplicateFrom rule): a source with replication filters
cannot serve a replica without any; off, filters are not looked at."""

from __future__ import annotations

import pytest

from libs.mysql.dialect import normalize_replication_row, replication_filters
from libs.topology.candidate import can_replicate_from, choose_candidate
from libs.topology.plan import CandidateRules
from libs.topology.view import InstanceState
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, r

FILTER = "Replicate_Do_DB=app"


def filtered(state: InstanceState, filters: str = FILTER) -> InstanceState:
    assert state.last_probe.replication is not None
    repl = state.last_probe.replication.model_copy(update={"replication_filters": filters})
    snap = state.last_probe.model_copy(update={"replication": repl})
    return InstanceState(key=state.key, last_probe=snap, last_seen=snap)


@pytest.mark.parametrize(
    ("replica_filters", "source_filters", "verify", "refused"),
    [
        ("", FILTER, True, True),
        ("", FILTER, False, False),
        (FILTER, FILTER, True, False),
        ("Replicate_Ignore_DB=x", FILTER, True, False),  # orchestrator: both filtered is fine
        (FILTER, "", True, False),
        ("", "", True, False),
    ],
)
def test_can_replicate_from(replica_filters: str, source_filters: str, verify: bool, refused: bool) -> None:
    replica, source = filtered(r(7), replica_filters).info, filtered(r(8), source_filters).info
    why = can_replicate_from(replica, source, verify_filters=verify)
    assert (why is not None) is refused
    if refused:
        assert why is not None and "has replication filters" in why and "VerifyReplicationFilters" in why


def test_a_filtered_replica_is_not_promoted_over_unfiltered_ones_when_verifying() -> None:
    view = cluster(filtered(r(7, pos="0-1-101")), r(8), r(9))
    assert choose_candidate(view, MASTER, CandidateRules(), NOW).successor == k(7)  # most data wins
    plan = choose_candidate(view, MASTER, CandidateRules(verify_replication_filters=True), NOW)
    assert plan.ok and plan.successor == k(8) and plan.intermediate is None
    assert plan.replicas_to_repoint == (k(9),) and [x.key for x in plan.lost] == [k(7)]
    why = {x.key: x.reason for x in plan.passed_over}[k(7)]
    assert "has replication filters (Replicate_Do_DB=app)" in why


def test_filters_are_read_from_show_slave_status() -> None:
    row = {
        "Master_Host": "10.0.0.1",
        "Master_Port": 3306,
        "Replicate_Do_DB": "app,billing",
        "Replicate_Ignore_Table": "",
        "Replicate_Wild_Ignore_Table": "tmp.%",
    }
    assert replication_filters(row) == "Replicate_Do_DB=app,billing; Replicate_Wild_Ignore_Table=tmp.%"
    status = normalize_replication_row(row)
    assert status is not None and status.replication_filters == replication_filters(row)
    assert replication_filters({"Replicate_Do_DB": "", "Replicate_Ignore_DB": None}) == ""
