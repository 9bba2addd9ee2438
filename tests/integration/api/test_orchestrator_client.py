"""orchestrator's own `orchestrator-client` script, unchanged, against Baton's API (ORCHESTRATOR_API
set): the commands an orchestrator user runs every day print what they would print against
orchestrator. Needs bash, curl and jq."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.models import InstanceSnapshot
from libs.sandbox import Sandbox
from tests.integration.api.conftest import ApiProcess, publish_topology

CLIENT = Path(__file__).with_name("orchestrator-client")
pytestmark = pytest.mark.skipif(
    not (shutil.which("jq") and shutil.which("curl")),
    reason="orchestrator-client needs jq and curl (apt-get install -y jq curl)",
)


@pytest.fixture(scope="module")
def topo(api: ApiProcess, sandbox4: Sandbox) -> Iterator[dict[str, InstanceSnapshot]]:
    snaps = publish_topology(sandbox4, api.nats_url)
    api.wait_for(f"cluster/{sandbox4.key('master')}", lambda r: r.status_code == 200 and len(r.json()) == 4)
    yield dict(zip(sandbox4.names, snaps, strict=True))


def oc(api: ApiProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORCHESTRATOR_API": api.api}
    return subprocess.run(
        ["bash", str(CLIENT), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_read_commands(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    master, replica = str(topo["master"].key), str(topo["replica1"].key)
    assert oc(api, "-c", "clusters").stdout.split() == [master]
    assert oc(api, "-c", "clusters-alias").stdout.strip() == f"{master},{master}"
    tree = oc(api, "-c", "topology", "-i", replica).stdout.splitlines()
    assert len(tree) == 4 and tree[0].startswith(master) and all(t.startswith("+ ") for t in tree[1:])
    assert oc(api, "-c", "topology", "-a", master).stdout.splitlines() == tree
    tabulated = oc(api, "-c", "topology-tabulated", "-i", replica)
    assert tabulated.returncode == 0, tabulated.stderr
    rows = tabulated.stdout.splitlines()
    assert len(rows) == 4 and rows[0].startswith(f"{master} ") and all(r.startswith("+ ") for r in rows[1:])
    assert all(r.count("|") == 6 for r in rows) and len({r.index("|") for r in rows}) == 1
    assert [r.split("|")[4] for r in rows] == ["rw", "ro", "ro", "ro"]
    assert oc(api, "-c", "topology-tabulated", "-a", master).stdout.splitlines() == rows
    assert oc(api, "-c", "instance", "-i", replica).stdout.strip() == replica
    assert oc(api, "-c", "which-master", "-i", replica).stdout.strip() == master
    assert oc(api, "-c", "which-cluster", "-i", replica).stdout.strip() == master
    assert oc(api, "-c", "which-cluster-master", "-a", master).stdout.strip() == master
    assert len(oc(api, "-c", "which-replicas", "-i", master).stdout.split()) == 3
    assert len(oc(api, "-c", "which-cluster-instances", "-a", master).stdout.split()) == 4
    assert oc(api, "-c", "is-replicating", "-i", replica).stdout.strip() == replica
    assert oc(api, "-c", "all-clusters-masters").stdout.split() == [master]
    assert len(oc(api, "-c", "all-instances").stdout.split()) == 4
    analysis = oc(api, "-c", "replication-analysis")
    assert analysis.returncode == 0, analysis.stderr
    assert oc(api, "-c", "check-global-recoveries").stdout.strip() in ("enabled", "disabled")


def test_downtime_and_candidate(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    replica = str(topo["replica2"].key)
    begun = oc(api, "-c", "begin-downtime", "-i", replica, "-r", "kernel upgrade", "-u", "20m", "-o", "ops")
    assert begun.returncode == 0 and begun.stdout.strip() == replica, begun.stderr
    assert oc(api, "-c", "downtimed").stdout.split() == [replica]
    assert oc(api, "-c", "end-downtime", "-i", replica).stdout.strip() == replica
    assert oc(api, "-c", "downtimed").stdout.strip() == ""
    reg = oc(api, "-c", "register-candidate", "-i", replica, "--promotion-rule", "prefer")
    assert reg.returncode == 0 and reg.stdout.strip() == replica


def test_errors_exit_1_with_the_message(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    missing = oc(api, "-c", "instance", "-i", "127.0.0.1:1")
    assert missing.returncode == 1 and "instance 127.0.0.1:1 not found" in missing.stderr
    noack = oc(api, "-c", "ack-all-recoveries", "-r", "")
    assert noack.returncode == 1
