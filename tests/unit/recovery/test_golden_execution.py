"""Golden execution scenarios: `cases/<scenario>/scenario.json` in, `expected.json` out.

A dead master's failover is run by the real pipeline (drain → rank → promotion with fallback → lost)
over a fixed cluster view, with a scripted executor: which steps fail on which candidate, which
failures are past the point of no return, which replicas cannot follow their new source. Out come the
steps in the order they ran, the outcome, and the plan in force at the end. See cases/README.md."""

from __future__ import annotations

import asyncio
import difflib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.models import InstanceKey
from libs.recovery.audit import RecoveryRecord, StepOutcome
from libs.recovery.executor import StepResult
from libs.recovery.fence import Fence, StaticFence
from libs.recovery.steps import StepSpec
from libs.topology.plan import CandidateRules
from tests.unit.candidate.builders import cluster, k, master, r
from tests.unit.candidate.test_golden import _kwargs, _n, compare
from tests.unit.recovery.fakes import FakeExecutor, detection, rig

CASES = Path(__file__).parent / "cases"
SCENARIOS = sorted(p.name for p in CASES.iterdir() if (p / "scenario.json").exists())
_KEY = re.compile(r"127\.0\.0\.1:233(\d\d)")


def short(text: str) -> str:
    """Instance keys as port suffixes (127.0.0.1:23307 → 7), the vocabulary of the case files."""
    return _KEY.sub(lambda m: str(int(m.group(1))), text)


@dataclass
class ScriptedExecutor(FakeExecutor):
    """`fail`: step name (suffix notation) → error for its required targets; `irreversible`: those
    failures may have made the target writable; `cannot_follow`: replica → why its repoint fails."""

    script: dict[str, str] = field(default_factory=dict)
    irreversible: set[str] = field(default_factory=set)
    cannot_follow: dict[InstanceKey, str] = field(default_factory=dict)

    async def run(self, spec: StepSpec, record: RecoveryRecord, fence: Fence) -> StepResult:
        fence.check()
        name = short(spec.name)
        self.ran.append(name)
        if name in self.script:
            error = self.script[name]
            return StepResult(
                StepOutcome.FAILED,
                error=error,
                failed=dict.fromkeys(spec.required, error),
                reversible=name not in self.irreversible,
            )
        result = StepResult(StepOutcome.DONE, detail="scripted")
        if spec.name.startswith("repoint:"):
            lost = {x: why for x, why in self.cannot_follow.items() if x in spec.targets}
            result.errors = {str(x): why for x, why in lost.items()}
            result.lost = {x: f"could not be repointed under {spec.source}: {why}" for x, why in lost.items()}
        return result


def run_case(name: str) -> dict[str, Any]:
    case = json.loads((CASES / name / "scenario.json").read_text())
    known = {"description", "master", "replicas", "rules", "options", "command", "fail", "irreversible",
             "cannot_follow"}  # fmt: skip
    if set(case) - known:
        raise ValueError(f"{name}: unknown keys {sorted(set(case) - known)}")
    replicas = [r(int(n), **_kwargs(spec)) for n, spec in case["replicas"].items()]
    view = cluster(*replicas, failed=master(**_kwargs(case.get("master", {}))))
    rules = CandidateRules(**{"stale_after": timedelta(days=1), **case.get("rules", {})})
    executor = ScriptedExecutor(
        script=case.get("fail", {}),
        irreversible=set(case.get("irreversible", [])),
        cannot_follow={k(int(n)): why for n, why in case.get("cannot_follow", {}).items()},
    )
    t = rig(view, executor=executor, candidate_rules=rules)
    t.pipeline.c.options = t.pipeline.c.options.model_copy(update=case.get("options", {}))
    record = asyncio.run(t.pipeline.handle(detection(view), StaticFence(1), command=case.get("command", "")))
    plan = record.plan
    assert plan is not None
    return {
        "outcome": record.outcome.value,
        "reason": short(record.reason),
        "steps": executor.ran,
        "recorded": [
            short(s.name)
            for s in record.steps
            if s.name not in ("recheck", "pre-failover-hooks", "post-hooks")
        ],
        "successor": _n(record.successor),
        "intermediate": _n(record.intermediate),
        "tried": {str(_n(x.key)): x.reason for x in plan.tried},
        "lost": {str(_n(x.key)): short(x.reason) for x in record.lost if x.key != record.failed},
    }


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_execution(scenario: str) -> None:
    expected = json.loads((CASES / scenario / "expected.json").read_text())
    actual = run_case(scenario)
    shown = compare(expected, actual)
    want = json.dumps(expected, indent=1, sort_keys=True).splitlines()
    got = json.dumps(shown, indent=1, sort_keys=True).splitlines()
    if want != got:
        diff = "\n".join(difflib.unified_diff(want, got, "expected.json", "actual", lineterm=""))
        pytest.fail(f"{scenario}: execution differs\n{diff}\nreason: {actual['reason']}", pytrace=False)
