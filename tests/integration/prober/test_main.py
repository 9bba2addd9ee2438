"""`python -m services.prober`: one-line errors, and a clean SIGTERM shutdown that releases its leases."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from libs.bus.connection import connect
from libs.bus.server import NatsServer
from libs.sandbox import TOPOLOGY_PASSWORD, TOPOLOGY_USER, Sandbox
from libs.sandbox.server import free_port
from services.prober.shards import read_table
from tests.integration.prober.helpers import wait_for

REPO = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    return (
        env
        | {"BATON_MySQLTopologyUser": TOPOLOGY_USER, "BATON_MySQLTopologyPassword": TOPOLOGY_PASSWORD}
        | extra
    )


async def _run(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.prober",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), err.decode()


async def test_bad_config_and_unreachable_nats_are_one_line_errors() -> None:
    code, err = await _run(_env(BATON_InstancePollSeconds="five", BATON_BatonNatsURLs="nats://127.0.0.1:1"))
    assert code == 1 and err.strip().startswith("baton-prober: error:") and "InstancePollSeconds" in err
    assert len(err.strip().splitlines()) == 1
    code, err = await _run(_env(BATON_BatonNatsURLs=f"nats://127.0.0.1:{free_port()}"))
    assert code == 1 and "cannot connect to NATS" in err and "Traceback" not in err
    assert TOPOLOGY_PASSWORD not in err


async def test_runs_probes_and_releases_its_leases_on_sigterm(
    sandbox4: Sandbox, nats_server: NatsServer
) -> None:
    env = _env(
        BATON_BatonNatsURLs=nats_server.url,
        BATON_DiscoverySeeds=str(sandbox4.key("master")),
        BATON_MySQLHostnameResolveMethod="@@report_host",
        BATON_DiscoverByShowSlaveHosts="true",
        BATON_InstancePollSeconds="1",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.prober",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with await connect(nats_server.url, "main-test") as bus:

            async def four_probed() -> bool:
                for name in sandbox4.names:
                    try:
                        await bus.js.get_last_msg(
                            "BATON_SNAPSHOTS", f"baton.snapshot.127_0_0_1={sandbox4.key(name).port}"
                        )
                    except Exception:
                        return False
                return True

            await wait_for("the whole sandbox probed by the process", four_probed, 20, step=0.2)
            holders, live = await read_table(bus.js)
            assert len(live) == 1 and len(holders) == 32
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 15)
            assert proc.returncode == 0, err.decode()
            holders, live = await read_table(bus.js)
            assert holders == {} and live == set()  # released at once, not left to expire
            assert TOPOLOGY_PASSWORD not in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
