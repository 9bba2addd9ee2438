"""The `baton` orchestrator-client verbs (libs/cli/api_commands.py) against the real API process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from libs.bus.server import free_port
from libs.cli.api_commands import register
from libs.models import InstanceSnapshot
from libs.sandbox import Sandbox
from tests.integration.api.conftest import ApiProcess, publish_topology


@pytest.fixture(scope="module")
def topo(api: ApiProcess, sandbox4: Sandbox) -> Iterator[dict[str, InstanceSnapshot]]:
    snaps = publish_topology(sandbox4, api.nats_url)
    api.wait_for(f"cluster/{sandbox4.key('master')}", lambda r: r.status_code == 200 and len(r.json()) == 4)
    yield dict(zip(sandbox4.names, snaps, strict=True))


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """test root"""

    register(root)
    return root


def run(app: typer.Typer, api: ApiProcess, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--api", api.base])
    return result.exit_code, result.stdout, result.stderr


def test_read_verbs(app: typer.Typer, api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    master, replica = str(topo["master"].key), str(topo["replica1"].key)
    code, out, _ = run(app, api, "clusters")
    assert code == 0 and master in out.splitlines()
    code, out, _ = run(app, api, "topology", "-a", master)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4 and lines[0].startswith(master) and lines[1].startswith("+ ")
    assert run(app, api, "topology", "-i", replica)[1] == out
    code, out, _ = run(app, api, "topology-tabulated", "-a", master)
    tabulated = out.splitlines()
    assert code == 0 and len(tabulated) == 4 and tabulated[0].startswith(master)
    assert all(line.count("|") == 6 for line in tabulated) and tabulated[1].startswith("+ ")
    assert run(app, api, "topology-tabulated", "-i", replica)[1] == out
    assert run(app, api, "instance", "-i", replica)[1].strip() == replica
    assert run(app, api, "which-master", "-i", replica)[1].strip() == master
    assert run(app, api, "which-cluster", "-i", replica)[1].strip() == master
    assert run(app, api, "which-cluster-master", "-a", master)[1].strip() == master
    assert len(run(app, api, "which-replicas", "-i", master)[1].split()) == 3
    assert len(run(app, api, "which-cluster-instances", "-a", master)[1].split()) == 4
    assert master in run(app, api, "all-clusters-masters")[1]
    code, out, _ = run(app, api, "replication-analysis")
    assert code == 0
    code, out, _ = run(app, api, "check-global-recoveries")
    assert code == 0 and out.strip() in ("enabled", "disabled")


def test_json_output(app: typer.Typer, api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    code, out, _ = run(app, api, "instance", "-i", str(topo["master"].key), "--json")
    assert code == 0 and json.loads(out)["Key"]["Port"] == topo["master"].key.port


def test_downtime_and_candidate_verbs(
    app: typer.Typer, api: ApiProcess, topo: dict[str, InstanceSnapshot]
) -> None:
    replica = str(topo["replica2"].key)
    code, out, err = run(
        app, api, "begin-downtime", "-i", replica, "--duration", "5m", "--reason", "cli test"
    )
    assert code == 0, err
    assert out.strip() == replica
    assert run(app, api, "downtimed")[1].split() == [replica]
    assert run(app, api, "end-downtime", "-i", replica)[0] == 0
    assert run(app, api, "downtimed")[1].strip() == ""
    assert run(app, api, "register-candidate", "-i", replica, "--promotion-rule", "prefer")[0] == 0


def test_errors_are_one_line_with_exit_codes(
    app: typer.Typer, api: ApiProcess, topo: dict[str, InstanceSnapshot]
) -> None:
    code, out, err = run(app, api, "instance", "-i", "127.0.0.1:1")
    assert code == 1 and err.strip() == "baton: error: instance 127.0.0.1:1 not found" and out == ""
    code, _, err = run(app, api, "instance", "-i", "127.0.0.1:99999")
    assert code == 2 and "bad instance" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(app, api, "topology")
    assert code == 2 and "-a ALIAS" in err
    code, _, err = run(app, api, "ack-all-recoveries", "--reason", " ")
    assert code == 1 and "comment" in err
    result = CliRunner().invoke(app, ["clusters", "--api", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 3 and "cannot reach the API" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
