"""A hung master (SIGSTOP) fails over end to end, long before the replicas' slave_net_timeout (60 s).

The analyzer decides DeadMaster from the replicas' heartbeats; the recovery's re-check must reach the
same verdict (it folds the same history), not call the failure "already fixed" because the replicas'
IO threads still say Yes.
"""

from __future__ import annotations

import signal
import time

from libs.bus.server import NatsServer
from libs.recovery.audit import Outcome
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.recovery.harness import wait_replicating_from, writable_masters
from tests.integration.recovery.stack import Stack


async def test_hung_master_fails_over_before_slave_net_timeout(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(3), slave_net_timeout=60)
    stack = await Stack(sb, nats_server.url).start()
    try:
        started = time.monotonic()
        timing = await stack.failover(within=40, how=signal.SIGSTOP)
        elapsed = time.monotonic() - started
        record = timing.record
        print(f"\nSIGSTOP -> new master in baton_masters: {elapsed:.2f} s; {record.reason}")
        assert record.outcome is Outcome.SUCCEEDED, record.reason
        assert elapsed < 30, "decided from the heartbeats, not after slave_net_timeout (60 s)"
        new = sb.name_of(timing.published.master)
        assert new is not None and new != "master"
        others = {"replica1", "replica2", "replica3"} - {new}
        assert await writable_masters(sb, sorted(others | {new})) == [new]
        for other in others:
            await wait_replicating_from(sb, other, timing.published.master)
    finally:
        sb.kill("master", signal.SIGCONT)
        await stack.stop()


def _phases(split: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in split.items())


async def test_hung_master_recovery_is_as_fast_as_a_killed_ones(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    """Once decided, a hung master costs the recovery nothing a dead one does not: every step that
    touches it (re-check probe, fencing, the old-master watch) is bounded short or off the critical
    path. Compared on the recovery record: decision (gates, re-check, plan) + execution (to writable)."""
    splits: dict[str, dict[str, float]] = {}
    for how in (signal.SIGKILL, signal.SIGSTOP):
        sb = await sandbox_factory(master_replicas(3), slave_net_timeout=60)
        stack = await Stack(sb, nats_server.url).start()
        try:
            timing = await stack.failover(within=40, how=how)
            assert timing.record.outcome is Outcome.SUCCEEDED, timing.record.reason
            splits[how.name] = timing.split()
        finally:
            if how is signal.SIGSTOP:
                sb.kill("master", signal.SIGCONT)
            await stack.stop()
    kill, stop = splits["SIGKILL"], splits["SIGSTOP"]
    print(f"\nSIGKILL: {_phases(kill)}\nSIGSTOP: {_phases(stop)}")
    kill_s = kill["decision"] + kill["execution"]
    stop_s = stop["decision"] + stop["execution"]
    assert stop_s < kill_s + 1.0, f"decision+execution: SIGSTOP {stop_s:.3f}s vs SIGKILL {kill_s:.3f}s"
