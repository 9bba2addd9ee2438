"""Golden scenarios: `cases/<scenario>/cluster.json` in, `expected.json` findings out.

Each expected finding names its code and instance plus any fields worth pinning (counts, warnings,
flags; `reason_contains` checks a substring of the reason). The list is exhaustive and ordered: an
extra, missing or reordered finding fails with a unified diff of expected vs actual.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from libs.topology.analysis import Analysis, analyze
from libs.topology.view import group_clusters
from tests.unit.analysis.builder import NOW, build_case, compare, project

CASES = Path(__file__).parent / "cases"
SCENARIOS = sorted(p.name for p in CASES.iterdir() if (p / "cluster.json").exists())


def run_case(name: str) -> list[dict[str, Any]]:
    case = json.loads((CASES / name / "cluster.json").read_text())
    states, params, history = build_case(case)
    return [project(f) for view in group_clusters(states) for f in analyze(view, NOW, params, history)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario: str) -> None:
    expected: list[dict[str, Any]] = json.loads((CASES / scenario / "expected.json").read_text())
    actual = run_case(scenario)
    shown = [compare(e, a) for e, a in zip(expected, actual, strict=False)]
    shown += [
        {"code": a["code"], "instance": a["instance"], "reason": a["reason"]} for a in actual[len(expected) :]
    ]
    want = json.dumps(expected, indent=1, sort_keys=True).splitlines()
    got = json.dumps(shown, indent=1, sort_keys=True).splitlines()
    if want != got:
        diff = "\n".join(difflib.unified_diff(want, got, "expected.json", "actual", lineterm=""))
        reasons = "\n".join(f"  {a['code']} {a['instance']}: {a['reason']}" for a in actual)
        pytest.fail(f"{scenario}: findings differ\n{diff}\nactual reasons:\n{reasons}", pytrace=False)


# The catalogue the analyzer promises (issue 4); every code needs at least one golden case.
PROMISED = [code for code in Analysis if code is not Analysis.NO_PROBLEM] + [Analysis.NO_PROBLEM]
NOT_PROMISED = {Analysis.MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS}


def test_every_code_has_a_golden_case() -> None:
    seen: set[str] = set()
    for scenario in SCENARIOS:
        for finding in json.loads((CASES / scenario / "expected.json").read_text()):
            seen.add(finding["code"])
            seen.update(finding.get("structure_warnings", []))
    missing = [c.value for c in PROMISED if c.value not in seen and c not in NOT_PROMISED]
    assert not missing, f"codes without a golden case: {missing}"
