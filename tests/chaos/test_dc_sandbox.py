"""A MariaDB topology spread over three DC namespaces: master + replica in dc1, a replica in dc2 and in
dc3, replicating across the lab's bridge. Isolating dc1 breaks the remote replicas' replication and
leaves dc1's own replica replicating; rejoining heals it. (The lab's plumbing for the chaos scenarios.)
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from tests.chaos.invariants import Observations, check, writable
from tests.chaos.netlab import OBSERVER, NetLab, available
from tests.chaos.observer import load_rounds

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

ROOT = Path(__file__).resolve().parents[2]
PLACES = {"master": "dc1", "replica1": "dc1", "replica2": "dc2", "replica3": "dc3"}


@pytest.fixture
def lab() -> Iterator[NetLab]:
    with NetLab() as lab:
        yield lab


async def io_state(sb: Sandbox, name: str) -> tuple[str, str]:
    rows = await sb.sql(name, "SHOW SLAVE STATUS")
    return str(rows[0]["Slave_IO_Running"]), str(rows[0]["Master_Host"])


async def wait_for(check: object, what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def test_a_sandbox_over_three_dcs_and_an_isolated_master_dc(
    lab: NetLab, tmp_path: Path, sandbox_template: Path
) -> None:
    placement = {name: (lab.host(dc).netns, lab.address(dc)) for name, dc in PLACES.items()}
    sb = Sandbox(
        tmp_path / "sb",
        master_replicas(3),
        template_dir=sandbox_template,
        placement=placement,
        slave_net_timeout=2,
    )

    async def scenario() -> None:
        await sb.start()
        try:
            assert sb.key("replica2").host == lab.address("dc2")
            for name in ("replica1", "replica2", "replica3"):
                assert await io_state(sb, name) == ("Yes", lab.address("dc1"))
            await sb.sql("master", "CREATE TABLE IF NOT EXISTS baton_sandbox.t (id INT PRIMARY KEY)")
            await sb.sql("master", "INSERT INTO baton_sandbox.t VALUES (1)")
            for name in ("replica1", "replica2", "replica3"):

                async def has_row(name: str = name) -> bool:
                    return bool(await sb.sql(name, "SELECT id FROM baton_sandbox.t WHERE id = 1"))

                await wait_for(has_row, f"row on {name}")

            lab.isolate("dc1")
            await sb.sql("master", "INSERT INTO baton_sandbox.t VALUES (2)")

            async def remote_broken() -> bool:
                states = [await io_state(sb, n) for n in ("replica2", "replica3")]
                return all(state != "Yes" for state, _ in states)

            await wait_for(remote_broken, "the remote replicas to lose the isolated master")
            assert await sb.sql("replica1", "SELECT id FROM baton_sandbox.t WHERE id = 2")  # dc1 lives on
            assert not await sb.sql("replica2", "SELECT id FROM baton_sandbox.t WHERE id = 2")

            lab.rejoin("dc1")

            async def healed() -> bool:
                rows = [await sb.sql(n, "SELECT id FROM baton_sandbox.t WHERE id = 2") for n in PLACES]
                return all(rows[1:])

            await wait_for(healed, "replication to resume after the DC rejoined", within=90)
        finally:
            await sb.stop()

    asyncio.run(scenario())


def test_the_observer_sees_what_happens_and_the_checker_judges_it(
    lab: NetLab, tmp_path: Path, sandbox_template: Path
) -> None:
    """No Baton here: a killed master stays dead, so the checker must say the cluster never converged."""
    placement = {name: (lab.host(dc).netns, lab.address(dc)) for name, dc in PLACES.items()}
    sb = Sandbox(tmp_path / "sb", master_replicas(3), template_dir=sandbox_template, placement=placement)
    rounds_file = tmp_path / "rounds.jsonl"

    async def scenario() -> float:
        await sb.start()
        try:
            creds = sb.topology_creds
            argv = [sys.executable, "-m", "tests.chaos.observer", "--out", str(rounds_file)]
            argv += ["--user", creds.user, "--password", creds.password.get_secret_value()]
            for name in PLACES:
                argv += ["--server", str(sb.key(name))]
            observer = lab.spawn(OBSERVER, argv, cwd=ROOT)

            async def sampled(n: int) -> bool:
                return rounds_file.exists() and len(rounds_file.read_text().splitlines()) >= n

            await wait_for(lambda: sampled(15), "fifteen sampling rounds")
            sb.kill("master")
            killed_at = time.monotonic()
            seen = len(rounds_file.read_text().splitlines())
            await wait_for(lambda: sampled(seen + 10), "ten rounds after the kill")
            lab.stop(observer)
            return killed_at
        finally:
            await sb.stop()

    killed_at = asyncio.run(scenario())
    rounds = load_rounds(rounds_file)
    before = [r for r in rounds if r.at < killed_at - 0.5]  # a round takes at most its 0.5 s bound
    assert before and all(writable(r) == [str(sb.key("master"))] for r in before)
    assert all(r.servers[str(sb.key("replica3"))].master == str(sb.key("master")) for r in before)
    after = [r for r in rounds if r.at > killed_at + 0.1]
    assert after and not any(r.servers[str(sb.key("master"))].reachable for r in after)

    verdict = check(Observations(rounds=rounds, fault_ended_at=killed_at), converge_within_s=1.0)
    failed = {c.name for c in verdict.failed()}
    assert {"replicas-follow-master", "converged"} <= failed, verdict.checks
    assert "one-writable-master" not in failed
