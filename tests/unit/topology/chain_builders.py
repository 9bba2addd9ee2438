"""Chain topologies for intermediate-master tests, built on `tests/unit/candidate/builders`.

`chain()`: MASTER (alive) → IM k(1) (dead) → k(11), k(12) (failing to connect); siblings under MASTER
are passed in (`sibling(2)` is a healthy, replicating k(2)).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from libs.models import Flavor, InstanceKey, InstanceSnapshot, IOThreadState
from libs.topology.view import ClusterView, InstanceState
from tests.unit.candidate.builders import MASTER, NOW, k, r

IM = k(1)


def alive_master(*, dc: str = "dc1", pos: str = "0-1-100", version: str = "10.11") -> InstanceState:
    snap = InstanceSnapshot(
        key=MASTER,
        probed_at=NOW - timedelta(seconds=1),
        reachable=True,
        server_id=1,
        flavor=Flavor.MARIADB,
        version=f"{version}.2-MariaDB-log",
        log_bin=True,
        binlog_format="ROW",
        data_center=dc,
        gtid_current_pos=pos,
        gtid_binlog_pos=pos,
    )
    return InstanceState(key=MASTER, last_probe=snap, last_seen=snap)


def _with(state: InstanceState, **replication: Any) -> InstanceState:
    def change(s: InstanceSnapshot | None) -> InstanceSnapshot | None:
        if s is None or s.replication is None:
            return s
        return s.model_copy(update={"replication": s.replication.model_copy(update=replication)})

    probe = change(state.last_probe)
    assert probe is not None
    return state.model_copy(update={"last_probe": probe, "last_seen": change(state.last_seen)})


def sibling(n: int, **kw: Any) -> InstanceState:
    """A healthy replica of MASTER (IO and SQL threads running)."""
    return _with(r(n, **kw), io_state=IOThreadState.YES, sql_running=True)


def dead_im(**kw: Any) -> InstanceState:
    return _with(r(1, reachable=False, **kw), io_state=IOThreadState.YES)


def im_replica(n: int, **kw: Any) -> InstanceState:
    """A replica of IM whose IO thread fails to connect to it."""
    return _with(r(n, **kw), master=IM, io_state=IOThreadState.CONNECTING, last_io_errno=2003)


def chain(*siblings: InstanceState, replicas: tuple[InstanceState, ...] | None = None,
          im: InstanceState | None = None, master: InstanceState | None = None) -> ClusterView:  # fmt: skip
    reps = replicas if replicas is not None else (im_replica(11), im_replica(12))
    top = master or alive_master()
    return ClusterView(name=str(MASTER), alias="test", instances=(top, im or dead_im(), *siblings, *reps))


def keys(*ns: int) -> tuple[InstanceKey, ...]:
    return tuple(k(n) for n in ns)
