"""The README's first command, end to end: `baton up --sandbox`, look, kill the master, watch it recover.

One real process (`python -m libs.cli up --sandbox`) runs the embedded nats-server, a 4-node MariaDB
sandbox and all five services; the test uses only what an operator would: the `baton` CLI, the HTTP API
(orchestrator routes and the SSE stream) and Consul's KV API (a test Consul server, see tests/).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from libs import processes
from libs.bus.server import free_port
from tests.consul_server import ConsulTestServer

REPO = Path(__file__).resolve().parents[3]


def baton_cli(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")} | {"BATON_API": api}
    return subprocess.run(
        [sys.executable, "-m", "libs.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


async def wait_until(what: str, check, timeout: float = 30.0, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def whole_cluster(http: httpx.AsyncClient, instances: int = 4) -> bool:
    """The API shows a cluster of `instances` (False while the API is not answering yet)."""
    try:
        r = await http.get("/api/clusters-info")
    except httpx.TransportError:
        return False
    return r.status_code == 200 and any(c["CountInstances"] == instances for c in r.json())


@contextlib.asynccontextmanager
async def run_baton_up(
    tmp_path: Path, config: dict[str, object], *extra: str
) -> AsyncIterator[tuple[str, Path]]:
    """`baton up --sandbox --config <config> [extra]` as one subprocess; stopped with SIGTERM, which
    must exit 0 and leave no sandbox server behind. Yields the API URL and the state dir."""
    port = free_port()
    config_file = tmp_path / "baton.json"
    config_file.write_text(json.dumps(config))
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    log = (tmp_path / "up.log").open("wb")
    argv = [
        "up",
        "--sandbox",
        "--config",
        str(config_file),
        "--state-dir",
        str(state),
        "--listen",
        f"127.0.0.1:{port}",
        *extra,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "libs.cli", *argv], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{port}"
    try:
        yield api, state
    finally:
        processes.stop(proc, 30)
        log.close()
        output = (tmp_path / "up.log").read_text(errors="replace")
        assert proc.returncode == 0, output[-3000:]
        # a clean shutdown leaves no sandbox server behind
        nodes = state / "sandbox" / "nodes"
        assert not nodes.exists() or not any(nodes.iterdir()), "sandbox data dirs left behind"


@pytest.fixture
async def baton_up(tmp_path: Path, consul_server: ConsulTestServer) -> AsyncIterator[tuple[str, Path]]:
    config = {"ConsulAddress": consul_server.address, "KVClusterMasterPrefix": "mysql/master"}
    async with run_baton_up(tmp_path, config) as running:
        yield running


def sandbox_master(state: Path) -> tuple[str, int]:
    doc = json.loads((state / "sandbox" / "sandbox.json").read_text())
    node = next(n for n in doc["nodes"] if n["name"] == "master")
    return f"127.0.0.1:{node['port']}", int(node["pid"])


async def test_up_look_kill_the_master_and_watch_it_recover(
    baton_up: tuple[str, Path], consul_server: ConsulTestServer
) -> None:
    api, state = baton_up
    async with httpx.AsyncClient(base_url=api, timeout=5) as http:
        await wait_until("the sandbox discovered (4 instances)", lambda: whole_cluster(http), timeout=60)
        master, pid = sandbox_master(state)

        clusters = baton_cli(api, "clusters")
        assert clusters.returncode == 0 and master in clusters.stdout, clusters
        tree = baton_cli(api, "topology", "-i", master)
        assert tree.returncode == 0, tree.stderr
        lines = tree.stdout.strip().splitlines()
        assert master in lines[0] and len(lines) == 4 and all("+ 127.0.0.1:" in ln for ln in lines[1:]), (
            tree.stdout
        )

        seen: list[tuple[str, dict]] = []  # type: ignore[type-arg]

        async def listen() -> None:
            async with http.stream("GET", "/api/events", params={"type": ["detection.", "recovery."]}) as r:
                kind = ""
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[len("event: ") :]
                    elif line.startswith("data: "):
                        seen.append((kind, json.loads(line[len("data: ") :])))

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        async def recovered() -> dict | None:  # type: ignore[type-arg]
            r = await http.get("/api/audit-recovery")
            done = [rec for rec in r.json() if rec["IsSuccessful"]] if r.status_code == 200 else []
            return done[0] if done else None

        record = await wait_until("a successful recovery in audit-recovery", recovered, timeout=20)
        elapsed = time.monotonic() - killed_at
        assert record["AnalysisEntry"]["Analysis"] == "DeadMaster"
        successor = f"{record['SuccessorKey']['Hostname']}:{record['SuccessorKey']['Port']}"
        assert successor != master

        detections = await http.get("/api/audit-failure-detection")
        assert any(d["AnalysisEntry"]["Analysis"] == "DeadMaster" for d in detections.json())

        async def sse_saw_both() -> bool:
            kinds = {k for k, _ in seen}
            return "detection.active" in kinds and "recovery.completed" in kinds

        await wait_until("the detection and the recovery on the SSE stream", sse_saw_both, timeout=10)
        listener.cancel()

        async def tree_shows_new_master() -> str | None:
            out = baton_cli(api, "topology", "-i", successor)
            first = out.stdout.strip().splitlines()[:1]
            return out.stdout if out.returncode == 0 and first and successor in first[0] else None

        new_tree = await wait_until("the tree under the new master", tree_shows_new_master, timeout=10)
        # the new master with the other two replicas under it, then the dead old master (listed in the
        # cluster it left, as orchestrator does, and marked unreachable)
        lines = new_tree.strip().splitlines()
        assert len(lines) == 4 and sum(ln.startswith("+ ") for ln in lines) == 2, new_tree
        assert lines[-1].startswith(master) and "unreachable" in lines[-1], new_tree

        async def consul_holds_it() -> bool:
            async with httpx.AsyncClient(base_url=consul_server.url) as c:
                r = await c.get("/v1/kv/mysql/master", params={"recurse": "true"})
            if r.status_code != 200:
                return False
            values = {e["Key"]: base64.b64decode(e["Value"] or "").decode() for e in r.json()}
            return successor in values.values()

        await wait_until("Consul holding the new master", consul_holds_it, timeout=10)
        print(f"kill -9 → successful recovery visible in the API: {elapsed:.2f} s")
        assert elapsed < 10


async def test_planned_and_forced_failovers_through_the_cli(baton_up: tuple[str, Path]) -> None:
    """The operator's commands travel CLI → API → baton.cmd.recovery.* → the recovery leader → MySQL."""
    api, state = baton_up
    async with httpx.AsyncClient(base_url=api, timeout=5) as http:
        await wait_until("the sandbox discovered (4 instances)", lambda: whole_cluster(http), timeout=60)
    master, _ = sandbox_master(state)
    doc = json.loads((state / "sandbox" / "sandbox.json").read_text())
    target = next(f"127.0.0.1:{n['port']}" for n in doc["nodes"] if n["name"] == "replica2")

    refused = baton_cli(api, "graceful-master-takeover", "-a", master)  # 3 replicas: which one?
    assert refused.returncode != 0 and "designate" in refused.stderr, refused

    planned = baton_cli(api, "graceful-master-takeover", "-a", master, "-d", target)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.strip() == target, planned.stdout  # the promoted key, as orchestrator-client
    assert "write outage:" in planned.stderr, planned.stderr  # progress and the outage go to stderr

    async def master_is(key: str) -> bool:
        out = baton_cli(api, "topology", "-i", key)
        lines = out.stdout.strip().splitlines()
        return out.returncode == 0 and bool(lines) and lines[0].startswith(key) and ",rw," in lines[0]

    await wait_until(f"{target} writable at the top of the tree", lambda: master_is(target), timeout=10)

    forced = baton_cli(api, "force-master-failover", "-a", target)
    assert forced.returncode == 0, forced.stderr
    successor = forced.stdout.strip().splitlines()[-1]
    assert successor != target and successor.startswith("127.0.0.1:"), forced.stdout
    await wait_until(f"{successor} writable at the top of the tree", lambda: master_is(successor), timeout=10)
