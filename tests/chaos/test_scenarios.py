"""The chaos scenarios under pytest, one run each: a representative subset by default (CI), every
scenario with BATON_CHAOS=full (`make chaos` runs the whole matrix with repeats: tests/chaos/run.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.netlab import NetLab, available
from tests.chaos.scenarios import SCENARIOS, run_scenario

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

# ~0.5 min each: a failover across the DCs, and a DC partition that must not cause one. master-dc-isolated
# (~2 min a run, and dc1's Consul after the rejoin waits on JetStream's re-elections: docs/reliability.md,
# "Open"), leader-sigkill (the leader's death at each step is tested without namespaces in
# tests/integration/recovery/test_leader_kill_steps.py) and the newer scenarios are left to `make chaos` /
# BATON_CHAOS=full, to keep the whole suite well under 20 minutes
CI_SUBSET = ("master-sigkill", "replica-dc-isolated")
CHOSEN = list(SCENARIOS) if os.environ.get("BATON_CHAOS") == "full" else list(CI_SUBSET)


@pytest.fixture
def lab() -> Iterator[NetLab]:
    with NetLab() as lab:
        yield lab


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", CHOSEN)
def test_scenario(name: str, lab: NetLab, tmp_path: Path, sandbox_template: Path) -> None:
    result = asyncio.run(run_scenario(lab, tmp_path, sandbox_template, SCENARIOS[name]))
    failed = "\n".join(f"  {c.name}: {c.detail}" for c in result.verdict.failed())
    assert result.ok, f"{name}: invariants broken (logs in {result.logs}):\n{failed}"
