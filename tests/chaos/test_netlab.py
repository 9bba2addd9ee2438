"""The chaos tier's network: three DCs and an observer in namespaces, cut and mended, cleaned up after."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import time

import pytest

from tests.chaos.netlab import OBSERVER, ROUTE_PROTO, SUBNET, NetLab, NetLabError, available, other_labs

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

PORT = 7301
ECHO = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', {port})); s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(c.recv(16)); c.close()\n"
)
CLIENT = (
    "import socket, sys\n"
    "try:\n"
    "    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)\n"
    "    c.sendall(b'ping'); print(c.recv(16).decode())\n"
    "except OSError as e:\n"
    "    print('unreachable', e); sys.exit(1)\n"
)


def reaches(lab: NetLab, src: str, dst: str) -> bool:
    done = lab.run(src, [sys.executable, "-c", CLIENT, lab.address(dst), str(PORT)], timeout=30)
    return done.returncode == 0 and done.stdout.strip() == "ping"


def wait_listening(lab: NetLab, name: str) -> None:
    deadline = time.monotonic() + 30
    while not reaches(lab, name, name):
        assert time.monotonic() < deadline, f"echo server in {name} did not start"
        time.sleep(0.1)


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_isolate_cut_mend_and_cleanup() -> None:
    lab = NetLab()
    with lab:
        for dc in ("dc1", "dc2", "dc3"):
            lab.spawn(dc, [sys.executable, "-c", ECHO.format(port=PORT)])
        for dc in ("dc1", "dc2", "dc3"):
            wait_listening(lab, dc)
        pids = list(lab.pids())
        assert len(pids) == 3
        added_blackhole = lab._added_blackhole  # the lab removes only what it added

        assert reaches(lab, "dc2", "dc1") and reaches(lab, OBSERVER, "dc3")

        # the root namespace can never reach the lab's subnet (blackholed; it holds no address there)
        with socket.socket() as s:
            s.settimeout(2)
            code = s.connect_ex((lab.address("dc1"), PORT))
        assert code in (errno.EINVAL, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EPERM), code

        lab.isolate("dc1")
        assert not reaches(lab, "dc2", "dc1")
        assert not reaches(lab, "dc1", "dc3")
        assert not reaches(lab, OBSERVER, "dc1")
        assert reaches(lab, "dc1", "dc1")  # inside the isolated DC, life goes on
        assert reaches(lab, "dc2", "dc3")
        lab.rejoin("dc1")
        assert reaches(lab, "dc2", "dc1")

        lab.cut("dc2", "dc3")
        assert not reaches(lab, "dc2", "dc3") and not reaches(lab, "dc3", "dc2")
        assert reaches(lab, "dc2", "dc1") and reaches(lab, "dc3", "dc1") and reaches(lab, OBSERVER, "dc3")
        lab.mend_all()
        assert reaches(lab, "dc2", "dc3")

    assert lab.lab_id not in namespaces()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                state = next(line for line in status if line.startswith("State:"))
            assert "Z" in state, f"process {pid} outlived the lab"
        except FileNotFoundError:
            pass
    if added_blackhole and not other_labs(lab.lab_id):
        assert str(SUBNET) not in blackholes()


def blackholes() -> str:
    return subprocess.run(["ip", "route", "show", "type", "blackhole"], capture_output=True, text=True).stdout


def test_the_blackhole_stays_while_another_lab_is_open() -> None:
    """Two labs at once (two helpers' benchmarks): the one that added the root namespace's blackhole may
    close first; the route must stay while the other runs, and the last one out removes it."""
    first, second = NetLab(dcs=("dc1",)), NetLab(dcs=("dc1",))
    with first:
        second.open()
        try:
            assert str(SUBNET) in blackholes()
            first.close()
            assert str(SUBNET) in blackholes(), "removed while another lab is open"
            assert first.lab_id not in namespaces() and second.lab_id in namespaces()
        finally:
            second.close()
    if not other_labs(second.lab_id):
        routes = subprocess.run(
            ["ip", "route", "show", "type", "blackhole", "proto", ROUTE_PROTO], capture_output=True, text=True
        ).stdout
        assert str(SUBNET) not in routes, "the last lab out left a lab's route behind"


def test_a_lab_never_deletes_a_namespace_it_did_not_create() -> None:
    """A lab id that collides with an open lab's fails to open, and its cleanup leaves the other alone."""
    lab = NetLab(dcs=("dc1",)).open()
    try:
        twin = NetLab(dcs=("dc1",), lab_id=lab.lab_id)
        with pytest.raises(NetLabError, match="File exists"):
            twin.open()
        assert f"{lab.lab_id}-core" in namespaces() and f"{lab.lab_id}-dc1" in namespaces()
    finally:
        lab.close()


def test_a_failed_open_leaves_nothing() -> None:
    lab = NetLab(dcs=("dc1", "dc1"))  # the second dc1 collides: open fails half-way
    with pytest.raises(NetLabError, match="File exists"):
        lab.open()
    assert lab.lab_id not in namespaces()


def test_close_stops_what_others_started_inside_the_namespaces() -> None:
    """A sandbox's mariadbd is not spawned by the lab; a test cut short (a timeout) must still not leave it
    running inside a namespace nobody can reach any more."""
    lab = NetLab(dcs=("dc1",)).open()
    stray = subprocess.Popen(lab.command("dc1", ["sleep", "300"]), start_new_session=True)
    try:
        lab.close()
        assert stray.wait(15) is not None
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
