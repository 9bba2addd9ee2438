"""One `mariadbd` process: the cached template data dir, argv, spawn, readiness, signals.

The template (`mariadb-install-db` output, ~20 MB with a small redo log) is built once per base dir and
copied for every node, which is what makes a 4-node topology replicate in about 3 seconds. Processes
are started in their own session so a sandbox outlives the `baton sandbox up` that started it; they are
only ever signalled by PID, and only after checking that the PID still runs *our* data dir.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from libs.errors import SandboxError
from libs.sandbox.spec import NodeSpec

TEMPLATE_MARK = ".baton-template"
REDO_LOG_SIZE = "8M"


def find_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if found is None:
        raise SandboxError(f"{name} not found: install MariaDB (apt-get install -y mariadb-server)")
    return found


def mariadbd_version(mariadbd: str) -> str:
    out = subprocess.run([mariadbd, "--version"], capture_output=True, text=True, check=False, timeout=30)
    return " ".join(out.stdout.split()) or "unknown"


INSTALL_ATTEMPTS = 3


def ensure_template(template: Path) -> Path:
    """Build (once) an initialised data dir at `template`; safe against concurrent builders."""
    mariadbd = find_binary("mariadbd")
    version = mariadbd_version(mariadbd)
    mark = template / TEMPLATE_MARK
    if mark.is_file() and mark.read_text() == version:
        return template
    if template.exists():
        shutil.rmtree(template, ignore_errors=True)
    template.parent.mkdir(parents=True, exist_ok=True)
    staging = template.with_name(f"{template.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    argv = [
        find_binary("mariadb-install-db"),
        "--no-defaults",
        f"--user={getpass.getuser()}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        f"--datadir={staging}",
        f"--innodb-log-file-size={REDO_LOG_SIZE}",
    ]
    # Bounded retries: on a loaded machine the bootstrap server now and then aborts (seen in CI-like runs
    # with dozens of mariadbd starting at once); a second try on a clean dir succeeds.
    for attempt in range(1, INSTALL_ATTEMPTS + 1):
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode == 0:
            break
        shutil.rmtree(staging, ignore_errors=True)
        errors = [
            line
            for line in (result.stderr or result.stdout).strip().splitlines()
            if "[ERROR]" in line or "error" in line.lower()
        ]
        why = "; ".join(errors[-3:]) or "no output"
        if attempt == INSTALL_ATTEMPTS:
            raise SandboxError(f"mariadb-install-db failed {attempt} times, last: {why}")
        time.sleep(0.5 * attempt)
    (staging / TEMPLATE_MARK).write_text(version)
    try:
        staging.rename(template)
    except OSError:  # another process won the race
        shutil.rmtree(staging, ignore_errors=True)
    return template


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def mariadbd_argv(
    node: NodeSpec,
    *,
    server_id: int,
    port: int,
    datadir: Path,
    sock: Path,
    log_error: Path,
    slave_net_timeout: int,
    semi_sync: bool = True,
    host: str = "127.0.0.1",
) -> list[str]:
    """mariadbd's command line for `node`. `semi_sync=False` leaves semi-sync off at boot even if the
    node wants it: the sandbox switches it on once replication runs (enabling it at first boot delays
    the first replicated transaction by the semi-sync timeout on 10.11)."""
    opts = node.options
    argv = [
        find_binary("mariadbd"),
        "--no-defaults",
        f"--user={getpass.getuser()}",
        f"--datadir={datadir}",
        f"--port={port}",
        f"--bind-address={host}",
        f"--socket={sock}",
        f"--pid-file={datadir / 'mariadbd.pid'}",
        f"--log-error={log_error}",
        f"--server-id={server_id}",
        "--binlog-format=ROW",
        "--gtid-strict-mode=1",
        f"--report-host={host}",
        f"--report-port={port}",
        "--relay-log=relay-bin",
        "--innodb-buffer-pool-size=16M",
        f"--innodb-log-file-size={REDO_LOG_SIZE}",
        "--innodb-flush-log-at-trx-commit=2",
        "--performance-schema=OFF",
        "--skip-name-resolve",
        f"--slave-net-timeout={slave_net_timeout}",
        "--max-connections=100",
    ]
    if opts.log_bin:
        argv.append("--log-bin=mysql-bin")
        argv.append("--log-slave-updates" if opts.log_slave_updates else "--skip-log-slave-updates")
    if node.read_only:
        argv.append("--read-only=1")
    if opts.semi_sync and semi_sync:
        argv += ["--rpl-semi-sync-master-enabled=ON", "--rpl-semi-sync-slave-enabled=ON"]
    argv += list(opts.extra_args)
    return argv


def spawn(argv: list[str], log_error: Path, netns: str | None = None) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own; in network namespace `netns` if given (`ip netns exec`
    execs in place, so the PID is the server's own)."""
    if netns is not None:
        argv = [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", netns, *argv]
    log_error.parent.mkdir(parents=True, exist_ok=True)
    with open(log_error, "ab") as err:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def log_tail(log_error: Path, lines: int = 40) -> list[str]:
    try:
        return log_error.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def startup_failure(log_error: Path) -> str:
    """The most telling line of a failed start's error log."""
    tail = log_tail(log_error)
    for line in tail:
        if "Address already in use" in line or "Do you already have another" in line:
            return "port in use"
    for line in reversed(tail):
        if "[ERROR]" in line:
            return line.split("[ERROR]", 1)[1].strip()
    return tail[-1].strip() if tail else "exited without a log"


def _proc_state(pid: int) -> str | None:
    """The /proc state letter, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_ours(pid: int, datadir: Path) -> bool:
    """True when `pid` is a live (non-zombie) mariadbd serving `datadir`: guards against PID reuse."""
    if pid <= 0 or _proc_state(pid) in (None, "Z", "X"):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"--datadir={datadir}".encode() in cmdline


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, datadir: Path, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait until the process exited (reaping it when it is our child). True if gone in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return True
        elif not is_ours(pid, datadir):
            return True
        time.sleep(0.02)
    return False


def terminate(pid: int, datadir: Path, proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM (plus SIGCONT in case it is stopped), wait, then SIGKILL and wait again."""
    if proc is not None and proc.poll() is not None:
        return
    if proc is None and not is_ours(pid, datadir):
        return
    signal_pid(pid, signal.SIGTERM)
    signal_pid(pid, signal.SIGCONT)
    if wait_gone(pid, datadir, timeout, proc):
        return
    signal_pid(pid, signal.SIGKILL)
    if not wait_gone(pid, datadir, 5.0, proc):
        raise SandboxError(f"mariadbd pid {pid} did not exit after SIGKILL")
