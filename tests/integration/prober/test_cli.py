"""`baton discover` / `baton forget` end to end: a real sandbox, a real nats-server, a running worker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.discovery import registry as reg
from libs.sandbox import TOPOLOGY_PASSWORD, TOPOLOGY_USER, Sandbox
from libs.sandbox.server import free_port
from tests.integration.prober.helpers import start_worker, stop_worker, worker_config

REPO = Path(__file__).resolve().parents[3]
# The root app with this area's commands registered, as libs/cli/groups.py will do it.
RUN_CLI = (
    "import sys; from libs.cli import main as m, discovery; discovery.register(m.app); m.main(sys.argv[1:])"
)


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server.url, "cli-test") as b:
        await provision(b.js)
        yield b


@pytest.fixture
def config_file(tmp_path: Path, nats_server: NatsServer) -> Path:
    path = tmp_path / "baton.json"
    path.write_text(
        json.dumps(
            {
                "MySQLTopologyUser": TOPOLOGY_USER,
                "MySQLTopologyPassword": "${SANDBOX_PW}",
                "BatonNatsURLs": [nats_server.url],
                "MySQLHostnameResolveMethod": "@@report_host",
                "DiscoverByShowSlaveHosts": True,
                "InstancePollSeconds": 1,
                "MySQLConnectTimeoutSeconds": 1,
            }
        )
    )
    return path


async def baton(*args: str, password: str = TOPOLOGY_PASSWORD) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")} | {"SANDBOX_PW": password}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUN_CLI,
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_discover_wait_prints_the_whole_tree(
    sandbox4: Sandbox, nats_server: NatsServer, bus: Bus, config_file: Path
) -> None:
    worker = await start_worker(nats_server.url, worker_config(sandbox4, "w1"))
    try:
        seed = sandbox4.key("replica1")
        code, out, err = await baton(
            "discover", str(seed), "--config", str(config_file), "--wait", "--timeout", "20"
        )
        assert code == 0, err
        assert f"registered {seed}" in out
        for name in sandbox4.names:
            assert str(sandbox4.key(name)) in out
        lines = out.splitlines()
        lines = lines[next(i for i, ln in enumerate(lines) if ln.startswith("cluster ")) :]
        master_line = next(i for i, ln in enumerate(lines) if str(sandbox4.key("master")) in ln)
        replica_lines = [
            i
            for i, ln in enumerate(lines)
            if any(str(sandbox4.key(r)) in ln for r in ("replica1", "replica2", "replica3"))
        ]
        assert all(i > master_line for i in replica_lines)  # replicas hang under the master
        entries = await reg.read_registry(bus.js)
        assert entries[seed].source == "cli"
        assert set(entries) == {sandbox4.key(n) for n in sandbox4.names}
        code, out, _ = await baton("discover", str(seed), "--config", str(config_file))
        assert code == 0 and "already registered" in out
    finally:
        await stop_worker(worker)


async def test_discover_refuses_an_unreachable_seed_or_a_wrong_password_in_one_line(
    sandbox4: Sandbox, bus: Bus, config_file: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    code, out, err = await baton("discover", dead, "--config", str(config_file))
    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err
    assert f"cannot probe {dead} [2003]" in err
    wrong = "wrong-password-" + "q9z"
    code, out, err = await baton(
        "discover", str(sandbox4.key("master")), "--config", str(config_file), password=wrong
    )
    assert code == 1 and "[1045]" in err and "Access denied" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert wrong not in out + err
    assert await reg.read_registry(bus.js) == {}


async def test_forget_removes_an_instance(sandbox4: Sandbox, bus: Bus, config_file: Path) -> None:
    key = sandbox4.key("replica3")
    code, _, err = await baton("discover", str(key), "--config", str(config_file))
    assert code == 0, err
    assert key in await reg.read_registry(bus.js)
    code, out, err = await baton("forget", str(key), "--config", str(config_file))
    assert code == 0 and f"forgot {key}" in out, err
    assert key not in await reg.read_registry(bus.js)
    code, _, err = await baton("forget", str(key), "--config", str(config_file))
    assert code == 1 and "is not registered" in err
