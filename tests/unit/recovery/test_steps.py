"""Table-driven: which MySQL steps carry out a plan."""

from __future__ import annotations

import pytest

from libs.recovery.steps import ExecutionOptions, StepKind, plan_steps
from libs.topology.plan import Plan, ReplicaReason
from tests.unit.candidate.builders import MASTER, k

S, MID, R1, R2, L = k(1), k(2), k(3), k(4), k(5)


def plan(**kw: object) -> Plan:
    base: dict[str, object] = {"failed_master": MASTER, "cluster": str(MASTER), "ok": True, "successor": S}
    base.update(kw)
    return Plan(**base)  # type: ignore[arg-type]


ONE = plan(replicas_to_repoint=(R1, R2))
TWO = plan(intermediate=MID, replicas_to_repoint=(MID, R1))
TWO_LOST_MID = plan(
    intermediate=MID, replicas_to_repoint=(R1,), lost=(ReplicaReason(key=MID, reason="cannot follow"),)
)
WITH_LOST = plan(replicas_to_repoint=(R1,), lost=(ReplicaReason(key=L, reason="ahead"),))
ALONE = plan()


def drained(*targets: object) -> list[tuple[str, list[object], object]]:
    return [("stop-io", list(targets), None), ("drain", list(targets), None)]


@pytest.mark.parametrize(
    ("the_plan", "options", "expected"),
    [
        (
            ONE,
            ExecutionOptions(),
            [
                *drained(S, R1, R2),
                (f"wait-applied:{S}", [S], None),
                (f"repoint:{S}", [R1, R2], S),
                (f"promote:{S}", [S], None),
            ],
        ),
        (
            ALONE,
            ExecutionOptions(),
            [*drained(S), (f"wait-applied:{S}", [S], None), (f"promote:{S}", [S], None)],
        ),
        (
            TWO,
            ExecutionOptions(),
            [
                *drained(S, MID, R1),
                (f"wait-applied:{MID}", [MID], None),
                (f"repoint:{MID}", [S, R1], MID),
                (f"wait-caught-up:{S}", [S], MID),
                (f"stop-replication:{S}", [S], None),
                (f"repoint:{S}", [R1, MID], S),
                (f"promote:{S}", [S], None),
            ],
        ),
        (
            TWO_LOST_MID,
            ExecutionOptions(lost_downtime_minutes=5),
            [
                *drained(S, MID, R1),
                (f"wait-applied:{MID}", [MID], None),
                (f"repoint:{MID}", [S, R1], MID),
                (f"wait-caught-up:{S}", [S], MID),
                (f"stop-replication:{S}", [S], None),
                (f"repoint:{S}", [R1], S),
                (f"promote:{S}", [S], None),
                ("downtime-lost", [MASTER, MID], None),
                ("detach-lost", [MID], None),
            ],
        ),
        (
            WITH_LOST,
            ExecutionOptions(lost_downtime_minutes=0, detach_lost=True),
            [
                *drained(S, R1, L),
                (f"wait-applied:{S}", [S], None),
                (f"repoint:{S}", [R1], S),
                (f"promote:{S}", [S], None),
                ("detach-lost", [L], None),
            ],
        ),
        (
            WITH_LOST,
            ExecutionOptions(lost_downtime_minutes=60, detach_lost=False),
            [
                *drained(S, R1, L),
                (f"wait-applied:{S}", [S], None),
                (f"repoint:{S}", [R1], S),
                (f"promote:{S}", [S], None),
                ("downtime-lost", [MASTER, L], None),
            ],
        ),
        (plan(ok=False, successor=None, reason="nobody"), ExecutionOptions(), []),
    ],
    ids=[
        "one-step",
        "no-siblings",
        "two-step",
        "two-step-mid-lost",
        "lost-detached",
        "lost-downtimed",
        "not-ok",
    ],
)
def test_plan_steps(
    the_plan: Plan, options: ExecutionOptions, expected: list[tuple[str, list[object], object]]
) -> None:
    steps = plan_steps(the_plan, options)
    assert [(s.name, list(s.targets), s.source) for s in steps] == expected
    assert len({s.name for s in steps}) == len(steps)  # names identify steps for resumption


def test_the_successor_and_intermediate_are_required_lost_replicas_best_effort() -> None:
    steps = {s.kind: s for s in plan_steps(TWO_LOST_MID, ExecutionOptions(lost_downtime_minutes=1))}
    # the drain is best effort: the ranking after it looks at every replica afresh
    assert steps[StepKind.STOP_IO].best_effort and steps[StepKind.DRAIN].best_effort
    assert steps[StepKind.WAIT_APPLIED].required == (MID,) and steps[StepKind.WAIT_CAUGHT_UP].required == (S,)
    assert steps[StepKind.PROMOTE].required == (S,)
    assert steps[StepKind.DETACH_LOST].best_effort and steps[StepKind.DOWNTIME_LOST].best_effort
    assert not steps[StepKind.WAIT_CAUGHT_UP].mutating and steps[StepKind.PROMOTE].mutating
    # The intermediate is never promoted.
    assert all(
        MID not in s.targets for s in plan_steps(TWO, ExecutionOptions()) if s.kind is StepKind.PROMOTE
    )
