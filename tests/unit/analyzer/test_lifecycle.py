"""The detection lifecycle (libs/topology/lifecycle.py): analyses in, transitions out."""

from __future__ import annotations

from typing import Any

from libs.models import InstanceKey
from libs.topology.codes import Analysis
from libs.topology.detection import Detection, DetectionState, chained_incident_id
from libs.topology.lifecycle import IncidentBook, decide, problem_key, runs_detection_hooks
from tests.unit.analysis.builder import NOW
from tests.unit.analyzer.helpers import (
    DEAD,
    HEALTHY,
    UNREACHABLE,
    UNREACHABLE_ONE_BROKEN,
    Spec,
    evidence,
    findings_of,
)

M = InstanceKey.parse("m")
CLUSTER = "m:3306"


def run(book: IncidentBook, instances: Spec, **kw: Any) -> tuple[list[Detection], IncidentBook]:
    detections = decide(
        book,
        findings_of(instances),
        clusters={CLUSTER},
        now=NOW,
        evidence=evidence,
        **kw,  # type: ignore[arg-type]
    )
    return detections, book.apply_all(detections)


def test_a_new_problem_opens_one_incident_and_repeating_it_changes_nothing() -> None:
    detections, book = run(IncidentBook(), DEAD)
    assert [(d.state, d.finding.code) for d in detections] == [(DetectionState.ACTIVE, Analysis.DEAD_MASTER)]
    (active,) = detections
    assert active.incident == chained_incident_id(active.finding, "")
    assert active.message_id == f"{active.incident}:active:0"
    assert active.previous_incident == ""
    again, book2 = run(book, DEAD)
    assert again == []
    assert book2 == book


def test_no_problem_no_detection() -> None:
    detections, book = run(IncidentBook(), HEALTHY)
    assert detections == []
    assert book.open_detections() == []


def test_other_counts_are_a_change_of_the_same_incident() -> None:
    (active,), book = run(IncidentBook(), UNREACHABLE)
    assert active.finding.code is Analysis.UNREACHABLE_MASTER
    assert active.finding.connected_replicas == 2
    (changed,), book = run(book, UNREACHABLE_ONE_BROKEN)
    assert changed.state is DetectionState.CHANGED
    assert changed.incident == active.incident
    assert changed.revision == 1
    assert changed.finding.connected_replicas == 1
    assert changed.message_id != active.message_id
    assert book.open_for(problem_key(changed.finding)) == changed


def test_a_code_change_opens_the_new_code_first_then_clears_the_old() -> None:
    _, book = run(IncidentBook(), UNREACHABLE)
    detections, book = run(book, DEAD)
    assert [(d.state, d.finding.code) for d in detections] == [
        (DetectionState.ACTIVE, Analysis.DEAD_MASTER),
        (DetectionState.CLEARED, Analysis.UNREACHABLE_MASTER),
    ]
    assert [d.finding.code for d in book.open_detections()] == [Analysis.DEAD_MASTER]


def test_clear_then_recur_is_a_new_incident_chained_to_the_old_one() -> None:
    (first,), book = run(IncidentBook(), DEAD)
    (cleared,), book = run(book, HEALTHY)
    assert cleared.state is DetectionState.CLEARED
    assert cleared.incident == first.incident
    assert cleared.message_id == f"{first.incident}:cleared:0"
    assert book.open_detections() == []
    (second,), book = run(book, DEAD)
    assert second.state is DetectionState.ACTIVE
    assert second.previous_incident == first.incident
    assert second.incident not in (first.incident, chained_incident_id(second.finding, ""))


def test_two_analyzers_with_the_same_book_compute_the_same_message_ids() -> None:
    history = run(IncidentBook(), DEAD)[1]
    history = run(history, HEALTHY)[1]
    a, _ = run(history, DEAD)
    b = decide(
        history,
        findings_of(DEAD),
        clusters={CLUSTER},
        now=NOW.replace(second=5),
        evidence=evidence,
        node="other",
    )
    assert [d.message_id for d in a] == [d.message_id for d in b]


def test_held_instances_get_no_transition_at_all() -> None:
    detections, book = run(IncidentBook(), DEAD, held={M})
    assert detections == []
    _, book = run(IncidentBook(), UNREACHABLE)
    detections, _ = run(book, DEAD, held={M})
    assert detections == []  # neither DeadMaster opens nor UnreachableMaster clears


def test_only_the_analysed_clusters_are_cleared() -> None:
    _, book = run(IncidentBook(), DEAD)
    detections = decide(book, [], clusters={"other:3306"}, now=NOW, evidence=evidence)
    assert detections == []
    detections = decide(book, [], clusters={CLUSTER}, now=NOW, evidence=evidence)
    assert [d.state for d in detections] == [DetectionState.CLEARED]


def test_apply_is_idempotent_and_ignores_late_echoes() -> None:
    (x,), book = run(IncidentBook(), DEAD)
    (x_clear,), book = run(book, HEALTHY)
    (y,), book = run(book, DEAD)
    assert book.apply(x) == book
    assert book.apply(x_clear) == book
    assert book.apply(y) == book
    assert book.open_for(problem_key(y.finding)) == y
    assert book.previous(problem_key(y.finding)) == y.incident


def test_a_late_change_cannot_reopen_a_cleared_incident() -> None:
    (_,), book = run(IncidentBook(), UNREACHABLE)
    (changed,), book_changed = run(book, UNREACHABLE_ONE_BROKEN)
    (cleared,), _ = run(book_changed, HEALTHY)
    replayed = IncidentBook().apply_all([*run(IncidentBook(), UNREACHABLE)[0], cleared, changed])
    assert replayed.open_detections() == []


def test_a_restarted_analyzer_rebuilds_the_same_book_from_the_stream() -> None:
    stream = []
    book = IncidentBook()
    for step in (UNREACHABLE, UNREACHABLE_ONE_BROKEN, DEAD, HEALTHY, DEAD):
        detections, book = run(book, step)
        stream += detections
    rebuilt = IncidentBook().apply_all(stream)
    assert rebuilt == book
    assert run(rebuilt, DEAD)[0] == []  # the open incident is not re-announced


def test_foreign_detections_are_adopted() -> None:
    (theirs,), _ = run(IncidentBook(), DEAD)
    book = IncidentBook().apply(theirs.model_copy(update={"node": "other"}))
    assert run(book, DEAD)[0] == []


def test_which_codes_run_detection_hooks() -> None:
    by_code = {f.code: runs_detection_hooks(f) for f in findings_of(DEAD) + findings_of(UNREACHABLE)}
    assert by_code == {Analysis.DEAD_MASTER: True, Analysis.UNREACHABLE_MASTER: True}
    replica_problem = findings_of({"m": {}, "r1": {"master": "m", "sql": False}})
    assert [f.code for f in replica_problem] == [Analysis.MASTER_SINGLE_REPLICA_NOT_REPLICATING]
    assert not runs_detection_hooks(replica_problem[0])
