"""Data centers on one machine: network namespaces on one bridge, links that can be cut, processes inside.

Layout (`NetLab(dcs=("dc1", "dc2", "dc3"))`, all names prefixed with a per-lab id so labs never collide):

    root namespace:  ip route add blackhole 10.213.0.0/24   (first, so nothing can ever leave the machine)
    <id>-core:       bridge br0 — the "WAN" between data centers (and the observer's port)
    <id>-dc1:        eth0 10.213.0.11/24 ── veth ── d1 (in core, on br0)
    <id>-dc2:        eth0 10.213.0.12/24 ── veth ── d2
    <id>-dc3:        eth0 10.213.0.13/24 ── veth ── d3
    <id>-obs:        eth0 10.213.0.200/24 ── veth ── ob   the observer (invariant checkers, test clients)

Every participant runs inside a namespace (`spawn(dc, argv)` = `ip netns exec <ns> argv`), clients too;
the root namespace has no address in the subnet and blackholes it. Faults:
- `isolate(dc)` / `rejoin(dc)`: the DC's port on the bridge goes down/up — the DC is cut from every other
  DC and from the observer, its own processes still talk to each other (on its address and loopback);
- `cut(a, b)` / `mend(a, b)`: only the path between two namespaces, both directions, by blackhole host
  routes inside each (no iptables needed: none is installed here, and netem is not in this kernel);
- `add_address(dc, addr)` + `block(dc, addr)` / `unblock`: a service bound to a second address of its
  DC (NATS's cluster routes in the world) is cut alone, the DC's other traffic flowing.
Unix sockets are not namespaced: a test may administer a mariadbd in a DC through its socket whatever
the links say (that is management, not the data path under test).

Cleanup (`close`, also on `with` exit): every process spawned here is stopped by PID (SIGTERM, then
SIGKILL), the namespaces it created are deleted (which deletes their veths), and the blackhole route is
removed only when no other lab is open (no other `<id>-core` namespace exists) and only if a lab added it
(it carries `proto 213`; a route someone else put there is left alone). Opening and that last check take
one machine-wide lock, so a lab opening while another closes never runs without the blackhole. Requires
root; `available()` says why not when it cannot run.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

SUBNET = ipaddress.ip_network("10.213.0.0/24")
OBSERVER = "obs"
_IP = shutil.which("ip") or "/usr/sbin/ip"
ROUTE_PROTO = "213"  # marks the root namespace's blackhole as a lab's (ip route ... proto 213)
LOCK = Path("/run/baton-netlab.lock")


class NetLabError(RuntimeError):
    pass


def available() -> str | None:
    """None when network namespaces can be made here, else why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not Path(_IP).exists():
        return "iproute2 (`ip`) is not installed"
    probe = f"btnprobe{os.getpid()}"
    done = subprocess.run([_IP, "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip()}"
    subprocess.run([_IP, "netns", "del", probe], capture_output=True)
    return None


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([_IP, *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetLabError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


@dataclass
class Host:
    name: str  # dc1, dc2, ..., obs
    netns: str
    address: str
    port_name: str  # the veth end on the bridge, in the core namespace


@dataclass
class NetLab:
    dcs: Sequence[str] = ("dc1", "dc2", "dc3")
    lab_id: str = field(default_factory=lambda: "bt" + secrets.token_hex(2))
    hosts: dict[str, Host] = field(default_factory=dict, init=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)
    _added_blackhole: bool = field(default=False, init=False)
    _created: list[str] = field(default_factory=list, init=False)  # namespaces this lab made
    _cuts: set[frozenset[str]] = field(default_factory=set, init=False)
    _blocks: set[tuple[str, str]] = field(default_factory=set, init=False)

    @property
    def core(self) -> str:
        return f"{self.lab_id}-core"

    # --- lifecycle -------------------------------------------------------------------------------
    def open(self) -> NetLab:
        try:
            with _machine_lock():
                self._add_netns(self.core)  # first: a closing lab sees this one open and keeps the route
                self._blackhole()
            _run("-n", self.core, "link", "add", "br0", "type", "bridge")
            _run("-n", self.core, "link", "set", "br0", "up")
            _run("-n", self.core, "link", "set", "lo", "up")
            names = [*self.dcs, OBSERVER]
            for i, name in enumerate(names):
                last = 200 if name == OBSERVER else 11 + i
                self._add_host(name, str(SUBNET.network_address + last), f"p{i}")
        except BaseException:
            self.close()
            raise
        return self

    def _blackhole(self) -> None:
        routes = _run("route", "show", "type", "blackhole").stdout
        if str(SUBNET) not in routes.split():
            _run("route", "add", "blackhole", str(SUBNET), "proto", ROUTE_PROTO)
            self._added_blackhole = True

    def _add_netns(self, netns: str) -> None:
        _run("netns", "add", netns)  # fails when it exists: never adopt (and later delete) another's
        self._created.append(netns)

    def _add_host(self, name: str, address: str, port_name: str) -> None:
        netns = f"{self.lab_id}-{name}"
        inner = f"{self.lab_id}{port_name}i"  # created in the root ns, moved at once: unique names
        self._add_netns(netns)
        self.hosts[name] = Host(name, netns, address, port_name)
        _run("link", "add", inner, "type", "veth", "peer", "name", f"{self.lab_id}{port_name}o")
        _run("link", "set", inner, "netns", netns)
        _run("link", "set", f"{self.lab_id}{port_name}o", "netns", self.core)
        _run("-n", netns, "link", "set", inner, "name", "eth0")
        _run("-n", self.core, "link", "set", f"{self.lab_id}{port_name}o", "name", port_name)
        _run("-n", self.core, "link", "set", port_name, "master", "br0")
        _run("-n", self.core, "link", "set", port_name, "up")
        _run("-n", netns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")
        _run("-n", netns, "link", "set", "eth0", "up")
        _run("-n", netns, "link", "set", "lo", "up")

    def close(self) -> None:
        for proc in self._procs:
            _stop(proc)
        self._procs.clear()
        for netns in reversed(self._created):
            self._stop_inside(netns)
            _run("netns", "del", netns, check=False)
        self._created.clear()
        self.hosts.clear()
        with _machine_lock():
            if not other_labs(self.lab_id):
                # whichever lab added it: the last lab out removes a lab's route (proto 213), never another
                _run("route", "del", "blackhole", str(SUBNET), "proto", ROUTE_PROTO, check=False)
        self._added_blackhole = False

    @staticmethod
    def _stop_inside(netns: str) -> None:
        """Stop whatever still runs inside `netns` (SIGTERM, then SIGKILL): processes the lab did not
        spawn itself, such as a sandbox's mariadbd, when a test was cut short before its own cleanup
        (a deleted namespace lives on, unreachable, while a process is in it)."""
        pids = [int(p) for p in _run("netns", "pids", netns, check=False).stdout.split() if p.isdigit()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while pids and time.monotonic() < deadline:
                pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
                time.sleep(0.05)
            if not pids:
                return

    def __enter__(self) -> NetLab:
        return self.open()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- processes -------------------------------------------------------------------------------
    def address(self, name: str) -> str:
        return self.host(name).address

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise NetLabError(f"no host {name!r} in this lab (have {', '.join(self.hosts)})") from None

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside host `name`'s namespace."""
        return [_IP, "netns", "exec", self.host(name).netns, *argv]

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        stdout: IO[bytes] | int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` inside `name` in a session of its own (stderr with stdout); stopped by `close`."""
        proc = subprocess.Popen(
            self.command(name, argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def run(self, name: str, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside `name` to completion (a client, a check)."""
        return subprocess.run(self.command(name, argv), capture_output=True, text=True, timeout=timeout)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        _stop(proc)
        if proc in self._procs:
            self._procs.remove(proc)

    # --- faults ----------------------------------------------------------------------------------
    def isolate(self, name: str) -> None:
        """Cut `name` off the bridge: it reaches nobody and nobody reaches it."""
        _run("-n", self.core, "link", "set", self.host(name).port_name, "down")

    def rejoin(self, name: str) -> None:
        _run("-n", self.core, "link", "set", self.host(name).port_name, "up")

    def cut(self, a: str, b: str) -> None:
        """Drop everything between `a` and `b` (both directions); the rest of the network is untouched."""
        ha, hb = self.host(a), self.host(b)
        for here, there in ((ha, hb), (hb, ha)):
            _run("-n", here.netns, "route", "replace", "blackhole", f"{there.address}/32")
        self._cuts.add(frozenset((a, b)))

    def mend(self, a: str, b: str) -> None:
        ha, hb = self.host(a), self.host(b)
        for here, there in ((ha, hb), (hb, ha)):
            _run("-n", here.netns, "route", "del", "blackhole", f"{there.address}/32", check=False)
        self._cuts.discard(frozenset((a, b)))

    def add_address(self, name: str, address: str) -> None:
        """A second address on `name`'s eth0 (a service bound to it can be cut alone: `block`)."""
        _run("-n", self.host(name).netns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")

    def block(self, name: str, address: str) -> None:
        """Inside `name`, drop everything sent to `address` (a blackhole host route): one direction,
        one address; a TCP connection either side opens towards it dies with it."""
        _run("-n", self.host(name).netns, "route", "replace", "blackhole", f"{address}/32")
        self._blocks.add((name, address))

    def unblock(self, name: str, address: str) -> None:
        _run("-n", self.host(name).netns, "route", "del", "blackhole", f"{address}/32", check=False)
        self._blocks.discard((name, address))

    def mend_all(self) -> None:
        for pair in list(self._cuts):
            self.mend(*sorted(pair))
        for name, address in list(self._blocks):
            self.unblock(name, address)
        for name in self.hosts:
            self.rejoin(name)

    def pids(self) -> Iterable[int]:
        return [p.pid for p in self._procs if p.poll() is None]


def other_labs(lab_id: str) -> list[str]:
    """The core namespaces of labs other than `lab_id` that exist on this machine (open labs)."""
    listed = _run("netns", "list", check=False).stdout.split("\n")
    names = [line.split()[0] for line in listed if line.strip()]
    return [n for n in names if n.endswith("-core") and n != f"{lab_id}-core"]


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """One lab at a time opens its core or decides about the shared route (labs in other processes)."""
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the process and what it forked
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return any(line.startswith("State:") and "Z" in line for line in status.splitlines())
