"""Golden candidate-choice scenarios: `cases/<scenario>/cluster.json` in, `expected.json` plans out.

`expected.json` lists the plan `choose_candidate` makes, then one plan per entry of `fallbacks` (each
the `fallback_plan` after those candidates failed). Each expected plan names only what the scenario is
about; reasons are substrings. A mismatch fails with a unified diff and the plans' summaries. See
cases/README.md for the format.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from libs.models import Flavor, InstanceKey, PromotionRule
from libs.topology.candidate import choose_candidate, fallback_plan
from libs.topology.plan import CandidateRules, DrainState, Plan
from tests.unit.candidate.builders import MASTER, NOW, cluster, k, master, r

CASES = Path(__file__).parent / "cases"
SCENARIOS = sorted(p.name for p in CASES.iterdir() if (p / "cluster.json").exists())
_SUBSTRINGS = ("lost", "passed_over", "undrained", "tried")  # {port: reason substring}


def _kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    if "flavor" in out:
        out["flavor"] = Flavor(out["flavor"])
    if "rule" in out:
        out["rule"] = PromotionRule(out["rule"])
    return out


def _n(key: InstanceKey | None) -> int | None:
    return None if key is None else key.port - k(0).port


def project(plan: Plan) -> dict[str, Any]:
    """A plan in the vocabulary of expected.json: replicas by port suffix (7 is 127.0.0.1:23307)."""
    return {
        "ok": plan.ok,
        "reason": plan.reason,
        "successor": _n(plan.successor),
        "intermediate": _n(plan.intermediate),
        "repoint": [_n(x) for x in plan.replicas_to_repoint],
        "lost": {str(_n(x.key)): x.reason for x in plan.lost},
        "passed_over": {str(_n(x.key)): x.reason for x in plan.passed_over},
        "undrained": {str(_n(x.key)): x.reason for x in plan.undrained},
        "tried": {str(_n(x.key)): x.reason for x in plan.tried},
        "errant": {str(_n(e.replica)): e.gtids for e in plan.errant},
        "summary": plan.summary(),
    }


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys the expectation names; substring fields show the needle when it is found."""
    shown: dict[str, Any] = {}
    for key, want in expected.items():
        if key in _SUBSTRINGS:
            got = actual[key]
            shown[key] = {
                n: (needle if n in got and needle in got[n] else got.get(n, "<missing>"))
                for n, needle in want.items()
            }
            shown[key].update({n: got[n] for n in got if n not in want})
        elif key.endswith("_contains"):
            field = actual[key.removesuffix("_contains")]
            shown[key] = want if want in field else field
        else:
            shown[key] = actual.get(key, "<missing>")
    return shown


def run_case(name: str) -> list[Plan]:
    case = json.loads((CASES / name / "cluster.json").read_text())
    unknown = set(case) - {"description", "master", "replicas", "rules", "drain", "fallbacks"}
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}")
    replicas = [r(int(n), **_kwargs(spec)) for n, spec in case["replicas"].items()]
    view = cluster(*replicas, failed=master(**_kwargs(case.get("master", {}))))
    rules = CandidateRules(**case.get("rules", {}))
    drain = DrainState(case.get("drain", "pending"))
    plans = [choose_candidate(view, MASTER, rules, NOW, drain=drain)]
    for failed in case.get("fallbacks", []):
        tried = {k(int(n)): why for n, why in failed.items()}
        plans.append(fallback_plan(view, plans[-1], tried, rules, NOW))
    return plans


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario: str) -> None:
    expected: list[dict[str, Any]] = json.loads((CASES / scenario / "expected.json").read_text())
    plans = run_case(scenario)
    actual = [project(p) for p in plans]
    shown = [compare(e, a) for e, a in zip(expected, actual, strict=False)]
    shown += [{"summary": a["summary"]} for a in actual[len(expected) :]]
    want = json.dumps(expected, indent=1, sort_keys=True).splitlines()
    got = json.dumps(shown, indent=1, sort_keys=True).splitlines()
    if want != got:
        diff = "\n".join(difflib.unified_diff(want, got, "expected.json", "actual", lineterm=""))
        said = "\n".join(f"  {p.summary()}" + "".join(f"\n    {x}" for x in p.passed_over) for p in plans)
        pytest.fail(f"{scenario}: plans differ\n{diff}\nactual plans:\n{said}", pytrace=False)
