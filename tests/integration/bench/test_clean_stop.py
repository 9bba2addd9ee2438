"""Clean stops: a benchmark, `baton sandbox up` or `baton up` that gets SIGTERM (or SIGINT) mid-run stops
every process it started — mariadbd, nats-server, service subprocesses — and exits with 128 + the signal.

Each program runs with its own TMPDIR, so every process it starts has that directory in its command line
(data dirs, config files, store dirs): after it exits, no process may still name it. Whatever a failing
run leaves behind is killed here, by PID (only processes naming this test's own directory).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from libs.bus.server import free_port

ROOT = Path(__file__).resolve().parents[3]
BATON = Path(sys.executable).parent / "baton"
STARTED_WITHIN_S = 120  # a loaded 2-core machine boots a 4-node sandbox in seconds; be generous
EXIT_WITHIN_S = 90


def naming(directory: Path) -> dict[int, str]:
    """PID → command line of every live process whose command line names `directory`."""
    found: dict[int, str] = {}
    needle = str(directory)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if needle in cmdline:
            found[int(entry.name)] = cmdline
    return found


def has(kind: str) -> Callable[[dict[int, str]], bool]:
    return lambda procs: any(kind in cmd for cmd in procs.values())


@pytest.fixture
def private_tmp(tmp_path: Path) -> Iterator[Path]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    yield tmp
    for pid in naming(tmp):  # a failed test must not leave its orphans to the next one
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def interrupt_when(
    argv: list[str], tmp: Path, ready: Callable[[dict[int, str]], bool], sig: signal.Signals, log: Path
) -> int:
    """Run `argv` with TMPDIR=`tmp`; once `ready(processes naming tmp)`, send `sig`; return its exit code
    after checking that nothing naming `tmp` is left."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTED_WITHIN_S
            while not ready(naming(tmp)):
                assert proc.poll() is None, f"{argv} ended before it was interrupted:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{argv} did not start its servers:\n{log.read_text()}"
                time.sleep(0.1)
            proc.send_signal(sig)
            code = proc.wait(EXIT_WITHIN_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    deadline = time.monotonic() + 10  # children SIGKILLed by the program may still be exiting
    while (left := naming(tmp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"orphans after {sig.name} to {argv[:3]}: {left}\n{log.read_text()[-3000:]}"
    return code


@pytest.mark.parametrize(
    ("argv", "ready"),
    [
        pytest.param(
            [sys.executable, "bench/detection_latency.py", "3", "--polls", "1", "--no-write"],
            lambda p: has("mariadbd")(p) and has("nats-server")(p) and has("services.analyzer")(p),
            id="detection_latency",
        ),
        pytest.param(
            [sys.executable, "bench/failover_mttr.py", "3", "--graceful", "0", "--no-write"],
            lambda p: has("mariadbd")(p) and has("nats-server")(p),
            id="failover_mttr",
        ),
        pytest.param(
            [sys.executable, "bench/probe_throughput.py", "--sizes", "4", "--seconds", "60"],
            lambda p: has("mariadbd")(p) and has("nats-server")(p),
            id="probe_throughput",
        ),
        pytest.param(
            [sys.executable, "bench/master_discovery.py", "3", "--no-write"],
            lambda p: has("mariadbd")(p) and has(" up ")(p),
            id="master_discovery",
        ),
    ],
)
def test_a_benchmark_stopped_by_sigterm_leaves_no_process(
    argv: list[str], ready: Callable[[dict[int, str]], bool], private_tmp: Path, tmp_path: Path
) -> None:
    code = interrupt_when(argv, private_tmp, ready, signal.SIGTERM, tmp_path / "bench.log")
    assert code == 128 + signal.SIGTERM, (tmp_path / "bench.log").read_text()[-3000:]
    assert "every process it started is stopped" in (tmp_path / "bench.log").read_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sandbox_up_interrupted_mid_start_stops_its_nodes(
    sig: signal.Signals, private_tmp: Path, tmp_path: Path
) -> None:
    base = private_tmp / "sb"
    code = interrupt_when(
        [str(BATON), "sandbox", "up", "-n", "3", "--base-dir", str(base)],
        private_tmp,
        has("mariadbd"),  # the first node is booting: the others and the wiring are still to come
        sig,
        tmp_path / "sandbox.log",
    )
    assert code == 128 + sig, (tmp_path / "sandbox.log").read_text()
    assert not (base / "sandbox.json").exists()


def test_baton_up_stopped_by_sigterm_stops_its_sandbox_and_nats(private_tmp: Path, tmp_path: Path) -> None:
    state = private_tmp / "state"
    code = interrupt_when(
        [str(BATON), "up", "--sandbox", "--state-dir", str(state), "--listen", f"127.0.0.1:{free_port()}"],
        private_tmp,
        lambda p: has("mariadbd")(p) and has("nats-server")(p),
        signal.SIGTERM,
        tmp_path / "up.log",
    )
    assert code in (0, 128 + signal.SIGTERM), (tmp_path / "up.log").read_text()[-3000:]


def test_the_test_suite_stopped_by_sigterm_stops_its_servers(private_tmp: Path, tmp_path: Path) -> None:
    """pytest itself (a CI time limit sends SIGTERM): fixtures' teardowns run, no server is left."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += [f"--basetemp={private_tmp / 'bt'}", "tests/integration/mysql/test_replication.py"]
    serving = has("--report-port")  # a sandbox node, not the template bootstrap (which exits by itself)
    code = interrupt_when(argv, private_tmp, serving, signal.SIGTERM, tmp_path / "pytest.log")
    assert code != 0, (tmp_path / "pytest.log").read_text()[-3000:]
