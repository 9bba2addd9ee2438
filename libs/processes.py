"""Stopping a child process: SIGTERM, then SIGKILL if it has not exited within a bound."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Ask `proc` to stop (SIGTERM) and wait up to `timeout` seconds, then kill it; its exit status.
    A process that has already exited is only reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
