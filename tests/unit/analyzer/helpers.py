"""Small builders for the analyzer's pure-logic tests (on top of the golden-case builder)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from libs.topology.analysis import Finding, analyze
from libs.topology.lifecycle import Evidence
from libs.topology.view import ClusterView, group_clusters
from tests.unit.analysis.builder import NOW, build_case


def view_of(instances: dict[str, dict[str, Any]]) -> ClusterView:
    states, _, _ = build_case({"instances": instances})
    (view,) = group_clusters(states)
    return view


def findings_of(instances: dict[str, dict[str, Any]]) -> list[Finding]:
    return analyze(view_of(instances), NOW)


def evidence(_finding: Finding) -> Evidence:
    return Evidence(first_at=NOW - timedelta(seconds=1), newest_at=NOW)


Spec = dict[str, dict[str, Any]]

HEALTHY: Spec = {"m": {}, "r1": {"master": "m"}, "r2": {"master": "m"}}
DEAD: Spec = {
    "m": {"reachable": False},
    "r1": {"master": "m", "io": "Connecting", "errno": 2003},
    "r2": {"master": "m", "io": "Connecting", "errno": 2003},
}
DEAD_ONE_UNREACHABLE: Spec = {
    "m": {"reachable": False},
    "r1": {"master": "m", "io": "Connecting", "errno": 2003},
    "r2": {"master": "m", "reachable": False},
}
UNREACHABLE: Spec = {"m": {"reachable": False}, "r1": {"master": "m"}, "r2": {"master": "m"}}
UNREACHABLE_ONE_BROKEN: Spec = {
    "m": {"reachable": False},
    "r1": {"master": "m"},
    "r2": {"master": "m", "io": "Connecting", "errno": 2003},
}
