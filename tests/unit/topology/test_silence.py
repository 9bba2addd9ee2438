"""`silence_check_at`: when to probe a suspect master's replicas so that their silence is seen as soon as
it crosses the threshold, table-driven on the golden-case builder (`tests/unit/analysis/builder.py`).

Times are seconds relative to the builder's NOW. A replica's latest probe is `age` (default 1) seconds
old and it has received nothing for `silent_for` seconds up to that probe, so its silence crosses
N periods at -age - silent_for + N * period (+ the 20 ms margin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from libs.models import InstanceKey
from libs.topology.analysis import Analysis, analyze
from libs.topology.silence import CHECK_MARGIN, silence_check_at
from libs.topology.view import ClusterView
from tests.unit.analysis.builder import NOW, build_case

HUNG = {"reachable": False, "error": "Lost connection to MySQL server during query (read timeout)"}
M = InstanceKey.parse("m")


def _r(silent_for: float | None = None, **spec: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"master": "m", "heartbeat_period": 1, **spec}
    if silent_for is not None:
        out["silent_for"] = silent_for
    return out


CASES: list[tuple[str, dict[str, Any], float | None]] = [
    # (id, cluster, expected check time relative to NOW without the margin; None = no check)
    (
        "hung: the last replica to cross decides",
        {"m": HUNG, "r1": _r(1.2), "r2": _r(0.7), "r3": _r(1.5)},
        0.3,
    ),
    ("all already probed past their crossing", {"m": HUNG, "r1": _r(2.5), "r2": _r(3.0)}, None),
    ("one past its crossing, one still pending", {"m": HUNG, "r1": _r(2.5), "r2": _r(0.4)}, 0.6),
    ("master answers: nothing to check", {"m": {}, "r1": _r(1.2)}, None),
    ("master's last answer is stale: a suspect", {"m": {"age": 7}, "r1": _r(1.2)}, -0.2),
    (
        "a listening replica without heartbeats is never silent",
        {"m": HUNG, "r1": _r(1.2), "r2": _r(heartbeat_period=0)},
        None,
    ),
    ("a replica whose received mark Baton has not seen yet", {"m": HUNG, "r1": _r(1.2), "r2": _r()}, None),
    (
        "a broken IO thread already votes: ignored",
        {"m": HUNG, "r1": _r(1.2), "r2": _r(io="Connecting", errno=2013)},
        -0.2,
    ),
    ("an unreachable replica is ignored", {"m": HUNG, "r1": _r(1.2), "r2": _r(0.1, reachable=False)}, -0.2),
    ("a stale replica is ignored", {"m": HUNG, "r1": _r(1.2), "r2": _r(0.1, age=8)}, -0.2),
    ("no listening replica at all", {"m": HUNG, "r1": _r(io="Connecting", errno=2013)}, None),
    ("a 0.5 s period crosses sooner", {"m": HUNG, "r1": _r(0.2, heartbeat_period=0.5)}, -0.2),
    ("the latest probe exactly at the threshold is not past it", {"m": HUNG, "r1": _r(2.0)}, -1.0),
]


@pytest.mark.parametrize(("cluster", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_silence_check_at(cluster: dict[str, Any], expected: float | None) -> None:
    states, params, history = build_case({"instances": cluster})
    view = ClusterView(name="m:3306", alias="m", instances=tuple(states))
    at = silence_check_at(view, M, history, params, NOW)
    if expected is None:
        assert at is None
    else:
        assert at == NOW + timedelta(seconds=expected) + CHECK_MARGIN


def test_more_periods_move_the_check_later_and_zero_turns_it_off() -> None:
    cluster = {"m": HUNG, "r1": _r(1.2), "r2": _r(0.7)}
    states, params, history = build_case({"instances": cluster, "params": {"heartbeat_periods_silent": 3}})
    view = ClusterView(name="m:3306", alias="m", instances=tuple(states))
    assert silence_check_at(view, M, history, params, NOW) == NOW + timedelta(seconds=1.3) + CHECK_MARGIN
    states, params, history = build_case({"instances": cluster, "params": {"heartbeat_periods_silent": 0}})
    view = ClusterView(name="m:3306", alias="m", instances=tuple(states))
    assert silence_check_at(view, M, history, params, NOW) is None


def test_a_probe_at_the_check_time_sees_the_master_dead_and_one_before_does_not() -> None:
    """The check time is exactly where the rule turns: the analysis of replicas probed then says
    DeadMaster, of replicas probed just before it says UnreachableMaster (the rule is untouched)."""
    cluster = {"m": HUNG, "r1": _r(1.2), "r2": _r(0.7)}
    states, params, history = build_case({"instances": cluster})
    view = ClusterView(name="m:3306", alias="m", instances=tuple(states))
    at = silence_check_at(view, M, history, params, NOW)
    assert at is not None

    def probed(when: Any) -> ClusterView:
        moved = [
            s
            if s.key == M
            else s.model_copy(update={"last_probe": s.last_probe.model_copy(update={"probed_at": when})})
            for s in states
        ]
        return ClusterView(name="m:3306", alias="m", instances=tuple(moved))

    codes = {f.instance: f.code for f in analyze(probed(at), at, params, history)}
    assert codes[M] is Analysis.DEAD_MASTER
    early = at - 2 * CHECK_MARGIN
    codes = {f.instance: f.code for f in analyze(probed(early), early, params, history)}
    assert codes[M] is Analysis.UNREACHABLE_MASTER
    assert silence_check_at(probed(at), M, history, params, at) is None  # nothing left to check
