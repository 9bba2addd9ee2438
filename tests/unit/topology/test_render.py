from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.models import Flavor, InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology.render import ascii_tree
from libs.topology.view import fold, group_clusters

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STALE = timedelta(seconds=10)


def snap(port: int, master: int | None = None, *, reachable: bool = True, io: str = "Yes", ro: bool = True):
    repl = None
    if master is not None:
        repl = ReplicationStatus(
            master=InstanceKey(host="127.0.0.1", port=master),
            io_state=IOThreadState(io),
            sql_running=True,
            seconds_behind_master=0 if io == "Yes" else None,
        )
    return InstanceSnapshot(
        key=InstanceKey(host="127.0.0.1", port=port),
        probed_at=NOW - timedelta(seconds=1),
        reachable=reachable,
        version="10.11.6-MariaDB",
        flavor=Flavor.MARIADB,
        read_only=ro,
        log_bin=True,
        log_slave_updates=True,
        binlog_format="ROW",
        gtid_current_pos="0-1-5",
        replication=repl,
    )


def test_chain_renders_like_orchestrator() -> None:
    states = [
        fold(None, snap(1, ro=False)),
        fold(None, snap(2, 1)),
        fold(None, snap(3, 2, io="Connecting")),
        fold(None, snap(4, 1)),
    ]
    (view,) = group_clusters(states)
    assert ascii_tree(view, NOW, STALE).splitlines() == [
        "127.0.0.1:1     [0s,ok,10.11.6-MariaDB,rw,ROW,>>,GTID]",
        "+ 127.0.0.1:2   [0s,ok,10.11.6-MariaDB,ro,ROW,>>,GTID]",
        "  + 127.0.0.1:3 [null,nonreplicating,10.11.6-MariaDB,ro,ROW,>>,GTID]",
        "+ 127.0.0.1:4   [0s,ok,10.11.6-MariaDB,ro,ROW,>>,GTID]",
    ]


def test_unreachable_master_keeps_its_place_from_the_last_good_probe() -> None:
    master = fold(None, snap(1, ro=False))
    dead = InstanceSnapshot.unreachable(master.key, NOW, "refused", code=2003)
    states = [fold(master, dead), fold(None, snap(2, 1, io="Connecting"))]
    (view,) = group_clusters(states)
    lines = ascii_tree(view, NOW, STALE).splitlines()
    assert lines[0].startswith("127.0.0.1:1") and ",unreachable," in lines[0]
    assert lines[1].startswith("+ 127.0.0.1:2")
