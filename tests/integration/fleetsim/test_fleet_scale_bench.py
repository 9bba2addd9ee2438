"""bench/fleet_scale.py at a tiny size: it reaches its measurement with the whole simulated fleet probed,
and SIGTERM mid-run stops every process it started (simulator, nats-server, probers, analyzer, recovery).

Every process the bench starts inherits its TMPDIR: after it exits, none may still carry it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STARTED_WITHIN_S = 240  # discovery on a loaded 2-core machine; generous
EXIT_WITHIN_S = 90


def carrying(tmpdir: Path) -> dict[int, str]:
    """PID -> command line of every live process whose environment has TMPDIR=`tmpdir`."""
    needle = f"TMPDIR={tmpdir}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            found[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
    return found


@pytest.mark.timeout(STARTED_WITHIN_S + EXIT_WITHIN_S + 60)
def test_sigterm_mid_measurement_leaves_no_process(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "bench.log"
    env = {**os.environ, "TMPDIR": str(tmp)}
    argv = [sys.executable, "bench/fleet_scale.py", "--instances", "12", "--poll", "1", "--measure", "600"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTED_WITHIN_S
        while b"measuring" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        started = carrying(tmp)
        assert sum("bench.fleetsim" in c for c in started.values()) == 1, started
        assert sum("services.prober" in c for c in started.values()) == 2, started
        assert any("nats-server" in c for c in started.values()), started
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(EXIT_WITHIN_S) == 128 + signal.SIGTERM, log.read_text()
        assert "all 12 probed" in log.read_text()
        deadline = time.monotonic() + 10
        while carrying(tmp) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert carrying(tmp) == {}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in carrying(tmp):  # a failed run must not leave its orphans behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
