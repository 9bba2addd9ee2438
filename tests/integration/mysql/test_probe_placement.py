"""Data center, region and physical environment of real servers named by hostnames that carry them.

The probing process runs in its own mount namespace (`unshare --mount`) where a private /etc/hosts
names the sandbox's loopback servers `db-<node>.<dc>.<region>-<env>.example`: nothing on the machine
changes, and the names resolve only for that process. It probes with DataCenterPattern, RegionPattern
and PhysicalEnvironmentPattern set (plus, for one run, a DetectDataCenterQuery that must override the
pattern) and prints what each snapshot says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from libs.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[3]
PLACES = {"master": ("dc1", "eu", "prod"), "replica1": ("dc2", "us", "test")}
SCRIPT = """
import asyncio, json, os, sys
from libs.config import Settings
from libs.config.derive import probe_settings
from libs.models import InstanceKey
from libs.mysql.connection import Credentials
from libs.mysql.probe import probe

async def main():
    settings = Settings.model_validate_json(os.environ["PROBE_SETTINGS"])
    creds = Credentials(user=os.environ["PROBE_USER"], password=os.environ["PROBE_PASSWORD"])
    out = {}
    for target in sys.argv[1:]:
        snap = await probe(InstanceKey.parse(target), creds, probe_settings(settings))
        out[target] = [snap.reachable, snap.data_center, snap.region, snap.physical_environment]
    print(json.dumps(out))

asyncio.run(main())
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return done.returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare --mount` (root or user namespaces)"
)


def _probe_in_namespace(
    tmp_path: Path, sandbox: Sandbox, settings: dict[str, str]
) -> dict[str, list[object]]:
    hosts = tmp_path / "hosts"
    names = {node: f"db-{node}.{dc}.{region}-{env}.example" for node, (dc, region, env) in PLACES.items()}
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {n}\n" for n in names.values()))
    targets = [f"{names[node]}:{sandbox.key(node).port}" for node in PLACES]
    creds = sandbox.topology_creds
    env = {
        **os.environ,
        "PROBE_SETTINGS": json.dumps(settings),
        "PROBE_USER": creds.user,
        "PROBE_PASSWORD": creds.password.get_secret_value(),
        "PYTHONPATH": str(ROOT),
    }
    shell = 'mount --bind "$0" /etc/hosts && exec "$@"'
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, str(hosts)]
    done = subprocess.run(
        [*argv, sys.executable, "-c", SCRIPT, *targets],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, list[object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return {target.split(".", 1)[0].removeprefix("db-"): value for target, value in found.items()}


PATTERNS = {
    "DataCenterPattern": r"^db-[a-z0-9]+\.([a-z]+[0-9]+)\.",
    "RegionPattern": r"\.([a-z]+)-[a-z]+\.example$",
    "PhysicalEnvironmentPattern": r"-(prod|test)\.example$",
}


def test_patterns_name_the_place_of_real_servers(tmp_path: Path, sandbox4: Sandbox) -> None:
    found = _probe_in_namespace(tmp_path, sandbox4, PATTERNS)
    assert found == {node: [True, *place] for node, place in PLACES.items()}


def test_detect_data_center_query_overrides_the_pattern(tmp_path: Path, sandbox4: Sandbox) -> None:
    replica_port = sandbox4.key("replica1").port
    query = f"SELECT IF(@@port = {replica_port}, 'dc9', '')"  # empty answer: the pattern stands
    found = _probe_in_namespace(tmp_path, sandbox4, {**PATTERNS, "DetectDataCenterQuery": query})
    assert found["master"] == [True, "dc1", "eu", "prod"]
    assert found["replica1"] == [True, "dc9", "us", "test"]
