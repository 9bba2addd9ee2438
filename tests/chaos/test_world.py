"""Baton in three DC namespaces survives the simplest fault: the master is killed, a replica takes over,
and the observer's rounds satisfy every invariant."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.invariants import Observations, check
from tests.chaos.netlab import OBSERVER, NetLab, available
from tests.chaos.observer import load_rounds
from tests.chaos.world import ROOT, World

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture
def lab() -> Iterator[NetLab]:
    with NetLab() as lab:
        yield lab


@pytest.mark.timeout(600)
def test_master_sigkill_in_three_dcs(lab: NetLab, tmp_path: Path, sandbox_template: Path) -> None:
    world = World(lab, tmp_path, sandbox_template)
    rounds_file = tmp_path / "rounds.jsonl"

    async def scenario() -> float:
        await world.start()
        try:
            creds = world.sandbox.topology_creds
            argv = [sys.executable, "-m", "tests.chaos.observer", "--out", str(rounds_file)]
            argv += ["--user", creds.user, "--password", creds.password.get_secret_value()]
            argv += [a for name in world.spec.mysql for a in ("--server", world.server(name))]
            argv += [a for dc in world.spec.dcs for a in ("--consul", f"{dc}={world.consul_url(dc)}")]
            observer = lab.spawn(OBSERVER, argv, cwd=ROOT)
            await asyncio.sleep(2)
            world.sandbox.kill(world.sandbox.master, signal.SIGKILL)
            killed_at = time.monotonic()
            old = world.server(world.sandbox.master)

            async def moved() -> bool:
                values = await world.consul_values()
                return all(v not in (None, "", old) for v in values.values())

            deadline = time.monotonic() + 60
            while not await moved():
                assert time.monotonic() < deadline, f"no failover in 60 s:\n{world.tail()}"
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)  # let the observer see the settled state
            lab.stop(observer)
            return killed_at
        finally:
            await world.stop()

    killed_at = asyncio.run(scenario())
    verdict = check(Observations(rounds=load_rounds(rounds_file), fault_ended_at=killed_at))
    assert verdict.ok, verdict.checks
