"""Hooks run in real shells: values, ORC_* variables, injection attempts, timeouts, abort rules, output."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.hooks import HookContext, HookKind, failed, run_hook, run_hooks, wait_detached

SH = "/bin/sh"
BASH = shutil.which("bash")
MISSING_SHELL = "/nonexistent/sh"
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
CTX = HookContext(
    failure_type="DeadMaster",
    failure_description="Master cannot be reached",
    failed_host="db-1.dc1.example.com",
    failed_port=3306,
    failure_cluster="db-1.dc1.example.com:3306",
    failure_cluster_alias="orders",
    count_replicas=2,
    successor_host="db-2",
    successor_port=3307,
    lost_replicas=("db-3:3306",),
    replica_hosts=("db-2:3307", "db-3:3306"),
)


async def run(command: str, cwd: Path, ctx: HookContext = CTX, shell: str = SH, timeout: float = 10.0) -> str:
    result = await run_hook(
        HookKind.POST_FAILOVER, 1, command, ctx, timeout, shell=shell, cwd=str(cwd), base_env=BASE_ENV
    )
    assert result.exit_code == 0, result
    return result.output


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


# ---- values ------------------------------------------------------------------------------------------


async def test_placeholders_are_substituted(tmp_path: Path) -> None:
    out = await run(
        "echo 'Recovered from {failureType} on {failureCluster}. Failed: {failedHost}:{failedPort}; "
        "Promoted: {successorHost}:{successorPort}; lost {countLostReplicas}: {lostReplicas}; "
        "replicas {countReplicas}/{countSlaves}: {replicaHosts}; ok={isSuccessful}'",
        tmp_path,
    )
    assert out == (
        "Recovered from DeadMaster on db-1.dc1.example.com:3306. Failed: db-1.dc1.example.com:3306; "
        "Promoted: db-2:3307; lost 1: db-3:3306; replicas 2/2: db-2:3307,db-3:3306; ok=true\n"
    )


async def test_description_with_spaces_is_one_word(tmp_path: Path) -> None:
    assert await run("printf '[%s]\\n' {failureDescription}", tmp_path) == "[Master cannot be reached]\n"


async def test_successor_placeholders_are_empty_without_successor(tmp_path: Path) -> None:
    ctx = HookContext(failure_type="DeadMaster")
    assert await run("echo [{successorHost}:{successorPort}] {isSuccessful}", tmp_path, ctx) == "[:] false\n"


async def test_orc_variables_are_set_and_secrets_are_not_passed(tmp_path: Path) -> None:
    base = {**BASE_ENV, "BATON_MySQLTopologyPassword": "s3cret", "ORC_SUCCESSOR_HOST": "stale", "KEEP": "me"}
    ctx = HookContext(failure_type="DeadMaster", failed_host="db-1", failed_port=3306)
    result = await run_hook(
        HookKind.POST_FAILOVER, 1, "env", ctx, 5, shell=SH, cwd=str(tmp_path), base_env=base
    )
    env = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert env["ORC_FAILURE_TYPE"] == "DeadMaster"
    assert env["ORC_FAILED_HOST"] == "db-1"
    assert env["ORC_FAILED_PORT"] == "3306"
    assert env["ORC_IS_SUCCESSFUL"] == "false"
    assert env["KEEP"] == "me"
    assert "ORC_SUCCESSOR_HOST" not in env
    assert "s3cret" not in result.output
    assert not [k for k in env if k.startswith("BATON_")]


async def test_default_environment_drops_baton_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_MySQLTopologyPassword", "s3cret-from-env")
    result = await run_hook(HookKind.POST_FAILOVER, 1, "env", CTX, 5, shell=SH, cwd=str(tmp_path))
    assert "ORC_FAILURE_TYPE=DeadMaster" in result.output
    assert "s3cret-from-env" not in result.output


# ---- injection -------------------------------------------------------------------------------------

HOSTILE = [
    "a;touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "x' $(touch pwned) 'y",
    '\\"; touch pwned #',
    "a\ntouch pwned",
    "a && touch pwned || touch pwned",
    "$(touch${IFS}pwned)",
    "*",
]
CONTEXTS = [
    ("printf '%s\\n' {failedHost}", "{v}"),
    ("printf '%s\\n' '{failedHost}'", "{v}"),
    ("printf '%s\\n' 'host={failedHost}!'", "host={v}!"),
    ("printf '%s\\n' \"{failedHost}\"", "{v}"),
    ("printf '%s\\n' \"host={failedHost}!\"", "host={v}!"),
    ("printf '%s\\n' $(printf '%s' {failedHost} | od -An -c | tr -d ' \\n' >/dev/null; printf x)", "x"),
    ("printf '%s\\n' \"$(printf '%s' {failedHost})\"", "{v}"),
    ("printf '%s\\n' `printf '%s' {failedHost} >/dev/null` done", "done"),
    ("cat <<EOF\n{failedHost}\nEOF", None),
    ("echo 'Failed: {failedHost}:{failedPort}' > out.log; cat out.log", "Failed: {v}:3306"),
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(("template", "expected"), CONTEXTS)
async def test_hostile_values_never_run(
    tmp_path: Path, template: str, expected: str | None, value: str
) -> None:
    (tmp_path / "marker").write_text("so that * has something to match")
    ctx = HookContext(failed_host=value, failed_port=3306)
    out = await run(template, tmp_path, ctx)
    assert not (tmp_path / "pwned").exists(), f"{template!r} with {value!r} ran injected code"
    if expected is not None:
        assert out == expected.format(v=value) + "\n"


@pytest.mark.skipif(BASH is None, reason="bash not installed")
@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_values_in_ansi_c_quotes_under_bash(tmp_path: Path, value: str) -> None:
    assert BASH is not None
    ctx = HookContext(failed_host=value)
    out = await run("printf '%s\\n' $'<{failedHost}>'", tmp_path, ctx, shell=BASH)
    assert not (tmp_path / "pwned").exists()
    assert out == f"<{value}>\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40))
async def test_any_value_round_trips_exactly(tmp_path: Path, value: str) -> None:
    ctx = HookContext(failed_host=value, failure_description=value)
    out = await run(
        "printf '%s|%s|%s\\n' {failedHost} '{failedHost}' \"{failureDescription}\"", tmp_path, ctx
    )
    assert out == f"{value}|{value}|{value}\n"
    assert not (tmp_path / "pwned").exists()


# ---- order, failures, detaching --------------------------------------------------------------------


async def test_pre_hook_failure_stops_the_list(tmp_path: Path) -> None:
    commands = ["echo one", "echo two >&2; exit 7", "touch should-not-exist"]
    results = await run_hooks(
        HookKind.PRE_FAILOVER, commands, CTX, 5, shell=SH, cwd=str(tmp_path), base_env=BASE_ENV
    )
    assert [r.exit_code for r in results] == [0, 7]
    assert results[1].output == "two\n"
    assert failed(results)
    assert not (tmp_path / "should-not-exist").exists()


async def test_post_hook_failure_continues(tmp_path: Path) -> None:
    commands = ["exit 3", "touch ran-anyway"]
    results = await run_hooks(
        "PostFailoverProcesses", commands, CTX, 5, shell=SH, cwd=str(tmp_path), base_env=BASE_ENV
    )
    assert [r.exit_code for r in results] == [3, 0]
    assert [r.index for r in results] == [1, 2]
    assert failed(results)
    assert (tmp_path / "ran-anyway").exists()


async def test_hooks_run_in_order(tmp_path: Path) -> None:
    commands = [f"sleep 0.0{n}; echo {n} >> order" for n in (3, 1, 2)]
    await run_hooks(
        HookKind.POST_MASTER_FAILOVER, commands, CTX, 5, shell=SH, cwd=str(tmp_path), base_env=BASE_ENV
    )
    assert (tmp_path / "order").read_text() == "3\n1\n2\n"


async def test_trailing_ampersand_detaches_and_never_aborts(tmp_path: Path) -> None:
    commands = ["sleep 0.3; echo done > detached-done; exit 1 &", "echo after"]
    started = time.monotonic()
    results = await run_hooks(
        HookKind.PRE_FAILOVER, commands, CTX, 5, shell=SH, cwd=str(tmp_path), base_env=BASE_ENV
    )
    assert time.monotonic() - started < 0.25
    assert results[0].detached and results[0].exit_code is None and results[0].ok
    assert results[1].output == "after\n"
    assert not failed(results)
    finished = await wait_detached(5)
    assert [r.exit_code for r in finished] == [1]
    assert (tmp_path / "detached-done").read_text() == "done\n"


async def test_missing_shell_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    results = await run_hooks(
        HookKind.PRE_FAILOVER, ["true", "true"], CTX, 5, shell=MISSING_SHELL, cwd=str(tmp_path)
    )
    assert len(results) == 1
    assert results[0].error is not None and results[0].error.startswith("cannot start /nonexistent/sh")
    assert failed(results)


# ---- timeouts -----------------------------------------------------------------------------------


async def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    command = "sleep 30 & echo $! > child.pid; echo started; sleep 30"
    started = time.monotonic()
    result = await run_hook(
        HookKind.PRE_FAILOVER, 1, command, CTX, 0.5, shell=SH, cwd=str(tmp_path), base_env=BASE_ENV
    )
    assert 0.5 <= time.monotonic() - started < 2.5
    assert result.timed_out and result.exit_code is None and not result.ok
    assert result.error == "timed out after 0.5 s; process group killed"
    assert result.output == "started\n"
    assert await wait_gone(int((tmp_path / "child.pid").read_text()))


async def test_timeout_escalates_to_sigkill(tmp_path: Path) -> None:
    command = "trap '' TERM; sleep 30 & echo $! > child.pid; wait"
    started = time.monotonic()
    result = await run_hook(
        HookKind.POST_FAILOVER, 1, command, CTX, 0.3, shell=SH, cwd=str(tmp_path), base_env=BASE_ENV
    )
    assert 1.2 <= time.monotonic() - started < 4
    assert result.timed_out
    assert await wait_gone(int((tmp_path / "child.pid").read_text()))


async def test_leftover_holding_the_output_is_killed(tmp_path: Path) -> None:
    command = "sleep 30 & echo $! > child.pid; echo bye"
    started = time.monotonic()
    result = await run_hook(
        HookKind.POST_FAILOVER, 1, command, CTX, 10, shell=SH, cwd=str(tmp_path), base_env=BASE_ENV
    )
    assert time.monotonic() - started < 2
    assert result.exit_code == 0 and result.output == "bye\n"
    assert await wait_gone(int((tmp_path / "child.pid").read_text()))


async def test_cancelling_kills_the_running_hook(tmp_path: Path) -> None:
    task = asyncio.create_task(
        run_hooks(
            HookKind.POST_FAILOVER,
            ["echo $$ > shell.pid; sleep 30"],
            CTX,
            30,
            shell=SH,
            cwd=str(tmp_path),
            base_env=BASE_ENV,
        )
    )
    pid_file = tmp_path / "shell.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(int(pid_file.read_text()))


# ---- output -------------------------------------------------------------------------------------


async def test_output_and_duration_are_captured(tmp_path: Path) -> None:
    result = await run_hook(
        HookKind.POST_FAILOVER,
        2,
        "echo out; echo err >&2; sleep 0.1; exit 4",
        CTX,
        5,
        shell=SH,
        cwd=str(tmp_path),
        base_env=BASE_ENV,
    )
    assert result.exit_code == 4
    assert result.output == "out\nerr\n"
    assert result.output_bytes == 8 and not result.output_truncated
    assert result.duration_seconds >= 0.1
    assert result.index == 2 and result.kind is HookKind.POST_FAILOVER
    assert result.command == "echo out; echo err >&2; sleep 0.1; exit 4"


async def test_large_output_is_truncated(tmp_path: Path) -> None:
    command = "head -c 300000 /dev/zero | tr '\\0' a; echo END"
    result = await run_hook(
        HookKind.POST_FAILOVER,
        1,
        command,
        CTX,
        10,
        shell=SH,
        cwd=str(tmp_path),
        base_env=BASE_ENV,
        output_limit=1000,
    )
    assert result.exit_code == 0
    assert result.output_bytes == 300004
    assert result.output_truncated
    assert result.output.startswith("a" * 500 + "\n[... 299004 bytes omitted ...]\n")
    assert result.output.endswith("a" * 496 + "END\n")


async def test_default_output_bound_is_64_kib(tmp_path: Path) -> None:
    result = await run_hook(
        HookKind.POST_FAILOVER,
        1,
        "head -c 1000000 /dev/zero",
        CTX,
        10,
        shell=SH,
        cwd=str(tmp_path),
        base_env=BASE_ENV,
    )
    assert result.output_bytes == 1_000_000
    assert result.output_truncated
    assert len(result.output.encode()) < 64 * 1024 + 100
