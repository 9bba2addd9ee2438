"""Run one shell script as a bounded child: its own process group, a time limit, captured output.

The mechanics behind `runner.py`: a timeout sends SIGTERM to the whole process group, then SIGKILL
after `KILL_GRACE_SECONDS`; once the shell has exited, anything still holding its output is killed after
`DRAIN_GRACE_SECONDS`; output beyond the limit keeps its first and last halves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping

KILL_GRACE_SECONDS = 1.0
DRAIN_GRACE_SECONDS = 0.5


class Output:
    """Keeps the first and last `limit // 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> tuple[str, bool]:
        dropped = self.total - len(self.head) - len(self.tail)
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if dropped <= 0:
            return head + tail, False
        return f"{head}\n[... {dropped} bytes omitted ...]\n{tail}", True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class _HookProtocol(asyncio.SubprocessProtocol):
    """Collects output and tells apart "the shell exited" from "nobody holds the output any more".

    (asyncio's `Process.wait()` only returns once the pipes are closed too, so a background child that
    keeps stdout open would hide the shell's exit.)
    """

    def __init__(self, output: Output) -> None:
        loop = asyncio.get_running_loop()
        self.output = output
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self.output.add(bytes(data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.eof.done():
            self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def _wait(future: asyncio.Future[None], seconds: float) -> bool:
    """Wait up to `seconds` for `future`; whether it completed."""
    try:
        await asyncio.wait_for(asyncio.shield(future), seconds)
    except TimeoutError:
        return False
    return True


async def _terminate(pgid: int, protocol: _HookProtocol) -> None:
    _signal_group(pgid, signal.SIGTERM)
    if not await _wait(protocol.exited, KILL_GRACE_SECONDS):
        _signal_group(pgid, signal.SIGKILL)
        await _wait(protocol.exited, KILL_GRACE_SECONDS)


async def execute(
    script: str, env: Mapping[str, str], *, time_limit: float, shell: str, cwd: str | None, limit: int
) -> tuple[int | None, bool, str | None, Output]:
    """Run one script; return (exit code, timed out, error, output)."""
    output = Output(limit)
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _HookProtocol(output),
            shell,
            "-c",
            script,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
    except OSError as exc:
        return None, False, f"cannot start {shell}: {exc.strerror or exc}", output
    pgid = transport.get_pid()
    timed_out = False
    try:
        if not await _wait(protocol.exited, time_limit):
            timed_out = True
            await _terminate(pgid, protocol)
        if not await _wait(protocol.eof, DRAIN_GRACE_SECONDS):
            _signal_group(pgid, signal.SIGKILL)  # leftovers still holding the output
            await _wait(protocol.eof, DRAIN_GRACE_SECONDS)
    except asyncio.CancelledError:
        await _terminate(pgid, protocol)
        raise
    finally:
        transport.close()
    if timed_out:
        return None, True, f"timed out after {time_limit:g} s; process group killed", output
    return transport.get_returncode(), False, None, output
