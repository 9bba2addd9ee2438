"""The sandbox itself: CLI up/status/down, every shape replicating, node helpers, errors."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from libs.errors import SandboxError
from libs.models import IOThreadState
from libs.mysql import ConnectionPool, probe
from libs.sandbox import NodeOptions, NodeSpec, Sandbox, TopologySpec, shape
from libs.sandbox.cli import app
from libs.sandbox.server import is_ours
from libs.sandbox.state import load_state
from tests.fixtures.sandbox import SandboxFactory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_cli_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    base = tmp_path / "sb"
    runner = CliRunner()
    up = runner.invoke(app, ["up", "--replicas", "2", "--base-dir", str(base)])
    assert up.exit_code == 0, up.output
    state = load_state(base)
    assert state is not None and [n.name for n in state.nodes] == ["master", "replica1", "replica2"]
    pids = [n.pid for n in state.nodes]
    assert all(is_ours(n.pid, n.datadir) for n in state.nodes)
    try:
        status = runner.invoke(app, ["status", "--base-dir", str(base)])
        assert status.exit_code == 0, status.output
        lines = status.output.splitlines()
        master_line = next(i for i, line in enumerate(lines) if "master 127.0.0.1:" in line)
        for name in ("replica1", "replica2"):
            line = next(line for line in lines if f"{name} 127.0.0.1:" in line)
            assert "io=Yes sql=Yes" in line
            assert line.index(name) > lines[master_line].index("master")  # nested under the master
    finally:
        down = runner.invoke(app, ["down", "--base-dir", str(base)])
    assert down.exit_code == 0, down.output
    assert not any(_alive(pid) for pid in pids)
    assert not (base / "nodes").exists()
    assert not (base / "sandbox.json").exists()
    leftovers = sorted(p.name for p in base.iterdir())
    assert leftovers == ["template"]  # only the cached template (`down --purge` removes it too)
    purge = runner.invoke(app, ["down", "--purge", "--base-dir", str(base)])
    assert purge.exit_code != 0 and isinstance(purge.exception, SandboxError)  # nothing to stop


async def _replicating(sb: Sandbox, name: str) -> bool:
    rows = await sb.sql(name, "SHOW SLAVE STATUS")
    return bool(rows) and rows[0]["Slave_IO_Running"] == "Yes" and rows[0]["Slave_SQL_Running"] == "Yes"


@pytest.mark.parametrize("shape_name", ["chain", "delayed", "nolog", "semisync"])
async def test_every_shape_comes_up_replicating(sandbox_factory: SandboxFactory, shape_name: str) -> None:
    sb = await sandbox_factory(shape(shape_name, 2))
    pool = ConnectionPool()
    try:
        snaps = {n: await probe(sb.key(n), sb.topology_creds, pool=pool) for n in sb.names}
    finally:
        pool.close()
    for spec in sb.spec.nodes:
        snap = snaps[spec.name]
        assert snap.reachable, (spec.name, snap.error)
        if spec.master is None:
            assert snap.replication is None and not snap.read_only
            continue
        rep = snap.replication
        assert rep is not None and rep.replicating, spec.name
        assert rep.master == sb.key(spec.master)
        assert snap.read_only
    if shape_name == "chain":
        assert set(snaps["intermediate"].replicas) == {sb.key("replica1"), sb.key("replica2")}
        assert set(snaps["master"].replicas) == {sb.key("intermediate"), sb.key("replica3")}
        assert snaps["replica1"].gtid_slave_pos == snaps["master"].gtid_binlog_pos
    elif shape_name == "delayed":
        rep = snaps["delayed"].replication
        assert rep is not None and rep.sql_delay == 3600
    elif shape_name == "nolog":
        assert snaps["nolsu"].log_bin and not snaps["nolsu"].log_slave_updates
        assert not snaps["nobinlog"].log_bin
        assert snaps["replica1"].log_slave_updates
    elif shape_name == "semisync":
        master = snaps["master"].semi_sync
        assert master.master_enabled and master.master_status and master.master_clients == 2
        for r in ("replica1", "replica2"):
            assert snaps[r].semi_sync.replica_enabled and snaps[r].semi_sync.replica_status


async def test_node_helpers_stop_continue_kill_restart(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(shape("replicas", 1))
    old_pid = sb.pids["replica1"]
    sb.kill("replica1", signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await sb.sql("replica1", "SELECT 1")
    finally:
        sb.kill("replica1", signal.SIGCONT)
    assert await sb.sql("replica1", "SELECT 1 AS one") == [{"one": 1}]
    sb.kill("replica1", signal.SIGKILL)
    assert not sb.is_running("replica1")
    with pytest.raises(SandboxError, match="not running"):
        sb.kill("replica1", signal.SIGKILL)
    await sb.restart("replica1")
    assert sb.pids["replica1"] != old_pid and sb.is_running("replica1")
    await sb.wait_replicating("replica1", within=10)
    assert await _replicating(sb, "replica1")
    state = load_state(sb.base_dir)
    assert state is not None and {n.name: n.pid for n in state.nodes} == sb.pids
    # another process's view (attach) sees the same nodes
    other = Sandbox.attach(sb.base_dir)
    assert other.key("replica1") == sb.key("replica1") and other.is_running("replica1")


async def test_custom_spec_and_starting_twice_is_refused(sandbox_factory: SandboxFactory) -> None:
    spec = TopologySpec(
        nodes=(
            NodeSpec(name="a"),
            NodeSpec(name="b", master="a", options=NodeOptions(read_only=False)),
        )
    )
    sb = await sandbox_factory(spec)
    snap = await probe(sb.key("b"), sb.topology_creds, pool=ConnectionPool())
    assert snap.replication is not None and snap.replication.io_state is IOThreadState.YES
    assert not snap.read_only
    with pytest.raises(SandboxError, match="already running"):
        await Sandbox(sb.base_dir, spec, template_dir=sb.template_dir).start()
    assert sb.is_running("a")  # the refused start touched nothing


def test_errors_are_one_line_sandbox_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SandboxError, match="unknown sandbox shape 'star'"):
        shape("star")
    with pytest.raises(SandboxError, match="no sandbox in"):
        Sandbox.attach(tmp_path)
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        TopologySpec(nodes=(NodeSpec(name="a"), NodeSpec(name="b", master="ghost")))
    with pytest.raises(ValueError, match="no binary log"):
        TopologySpec(
            nodes=(NodeSpec(name="a", options=NodeOptions(log_bin=False)), NodeSpec(name="b", master="a"))
        )
    with pytest.raises(ValueError, match="cycle"):
        TopologySpec(
            nodes=(NodeSpec(name="r"), NodeSpec(name="a", master="b"), NodeSpec(name="b", master="a"))
        )
    with pytest.raises(ValueError, match="needs log_slave_updates"):
        TopologySpec(
            nodes=(
                NodeSpec(name="a"),
                NodeSpec(name="b", master="a", options=NodeOptions(log_slave_updates=False)),
                NodeSpec(name="c", master="b"),
            )
        )
    for ring in (  # co_master: a root and one of its direct replicas only
        (NodeSpec(name="a", co_master="c"), NodeSpec(name="b", master="a"), NodeSpec(name="c", master="b")),
        (NodeSpec(name="a", co_master="b"), NodeSpec(name="b")),
        (NodeSpec(name="a"), NodeSpec(name="b", master="a", co_master="a")),
    ):
        with pytest.raises(ValueError, match="not a root's direct replica"):
            TopologySpec(nodes=ring)
    assert shape("comasters", 1).node("master1").co_master == "master2"
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)
    with pytest.raises(SandboxError, match="mariadbd not found"):
        asyncio.run(Sandbox(tmp_path / "x", template_dir=tmp_path / "t").start())
