"""Golden master-plan scenarios: `cases/master_plan/<scenario>/cluster.json` in, `expected.json` out.

`master_plan` is what the pipeline asks at `plan`, `rank` and `fallback:` (designated candidate, rules
before and after the drain, fallback after a candidate failed). See cases/master_plan/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from libs.topology.failover import master_plan
from libs.topology.plan import CandidateRules, DrainState, Plan
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r
from tests.unit.candidate.test_golden import _kwargs, compare, project

CASES = Path(__file__).parent / "cases" / "master_plan"
SCENARIOS = sorted(p.name for p in CASES.iterdir() if (p / "cluster.json").exists())
KEYS = {"description", "master", "replicas", "rules", "drain", "designated", "fallbacks"}


def run_case(name: str) -> list[Plan]:
    case = json.loads((CASES / name / "cluster.json").read_text())
    if unknown := set(case) - KEYS:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}")
    replicas = [r(int(n), **_kwargs(spec)) for n, spec in case["replicas"].items()]
    view = cluster(*replicas, failed=master(**_kwargs(case.get("master", {}))))
    rules = CandidateRules(**case.get("rules", {}))
    drain = DrainState(case.get("drain", "pending"))
    designated = k(case["designated"]) if "designated" in case else None
    plans = [master_plan(view, MASTER, rules, NOW, designated=designated, drain=drain)]
    for failed in case.get("fallbacks", []):
        tried = {k(int(n)): why for n, why in failed.items()}
        plans.append(
            master_plan(
                view,
                MASTER,
                rules,
                NOW,
                designated=designated,
                drain=drain,
                previous=plans[-1],
                failed_candidates=tried,
            )
        )
    return plans


def test_every_scenario_folder_is_complete() -> None:
    assert len(SCENARIOS) >= 7
    for name in SCENARIOS:
        assert (CASES / name / "expected.json").exists(), name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario: str) -> None:
    expected: list[dict[str, Any]] = json.loads((CASES / scenario / "expected.json").read_text())
    plans = run_case(scenario)
    assert len(plans) == len(expected), f"{scenario}: {len(plans)} plans, {len(expected)} expected"
    actual = [project(p) for p in plans]
    shown = [compare(e, a) for e, a in zip(expected, actual, strict=True)]
    said = [p.summary() for p in plans]
    assert shown == expected, f"{scenario}: plans differ (actual: {said})"
