"""Bad input at the command line: one line naming the cause, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from libs.sandbox import Sandbox


def baton(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "libs.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_malformed_config(tmp_path: Path) -> None:
    path = tmp_path / "baton.json"
    path.write_text('{"InstancePollSeconds": 1,\n')
    assert_one_line_error(baton("config", "check", str(path)), str(path), "invalid JSON", "line 2")


def test_wrong_key_type(tmp_path: Path) -> None:
    path = tmp_path / "baton.json"
    path.write_text(json.dumps({"InstancePollSeconds": "five"}))
    assert_one_line_error(baton("config", "check", str(path)), "InstancePollSeconds", "integer")


def test_missing_config_file(tmp_path: Path) -> None:
    assert_one_line_error(baton("config", "check", str(tmp_path / "nope.json")), "no such file")


def test_valid_config_passes(tmp_path: Path) -> None:
    path = tmp_path / "baton.json"
    path.write_text(json.dumps({"InstancePollSeconds": 1, "MySQLTopologyPassword": "hunter2-secret"}))
    proc = baton("config", "check", "--show", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "hunter2-secret" not in proc.stdout


def test_unreachable_seed_host() -> None:
    # port 1 on loopback: nothing listens there, the connection is refused at once
    proc = baton("probe", "127.0.0.1:1", env={"BATON_MySQLTopologyUser": "baton"})
    assert_one_line_error(proc, "127.0.0.1:1", "2003")


@pytest.mark.parametrize("text", ["nonsense:xx", "host:0"])
def test_bad_instance_key_is_a_usage_error(text: str) -> None:
    proc = baton("probe", text, env={"BATON_MySQLTopologyUser": "baton"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


async def test_wrong_password(sandbox4: Sandbox) -> None:
    key = sandbox4.key(sandbox4.master)
    proc = baton(
        "probe",
        str(key),
        env={
            "BATON_MySQLTopologyUser": sandbox4.topology_creds.user,
            "BATON_MySQLTopologyPassword": "wrong-pw-42",
        },
    )
    assert_one_line_error(proc, str(key), "1045")
    assert "wrong-pw-42" not in proc.stderr


async def test_probe_prints_the_instance(sandbox4: Sandbox) -> None:
    key = sandbox4.key("replica1")
    creds = sandbox4.topology_creds
    proc = baton(
        "probe",
        str(key),
        env={
            "BATON_MySQLTopologyUser": creds.user,
            "BATON_MySQLTopologyPassword": creds.password.get_secret_value(),
            "BATON_DiscoverByShowSlaveHosts": "true",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert f"replicates from {sandbox4.key(sandbox4.master)}: io=Yes sql=Yes" in proc.stdout
