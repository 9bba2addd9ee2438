from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.models import Flavor, InstanceKey, InstanceSnapshot, IOThreadState, ReplicationStatus
from libs.topology.render import ascii_tree, tabulate, tabulated_tree
from libs.topology.view import ClusterView, fold, group_clusters

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STALE = timedelta(seconds=10)


def snap(
    port: int,
    master: int | None = None,
    *,
    reachable: bool = True,
    io: str = "Yes",
    ro: bool = True,
    lag: int = 0,
    lsu: bool = True,
) -> InstanceSnapshot:
    repl = None
    if master is not None:
        repl = ReplicationStatus(
            master=InstanceKey(host="127.0.0.1", port=master),
            io_state=IOThreadState(io),
            sql_running=True,
            seconds_behind_master=lag if io == "Yes" else None,
        )
    return InstanceSnapshot(
        key=InstanceKey(host="127.0.0.1", port=port),
        probed_at=NOW - timedelta(seconds=1),
        reachable=reachable,
        version="10.11.6-MariaDB",
        flavor=Flavor.MARIADB,
        read_only=ro,
        log_bin=True,
        log_slave_updates=lsu,
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


def _tabulated_view() -> ClusterView:
    states = [
        fold(None, snap(1, ro=False)),
        fold(None, snap(2, 1, lag=120)),
        fold(None, snap(3, 2, io="Connecting")),
        fold(None, snap(4, 1, lsu=False)),
    ]
    (view,) = group_clusters(states)
    return view


def test_tabulated_tree_is_orchestrators_topology_tabulated() -> None:
    """Columns padded to the widest cell, `|` between them with no spaces, the lag right-aligned, the
    extras one (padded) last column: orchestrator's ASCIITopology(tabulated=true) layout."""
    assert tabulated_tree(_tabulated_view(), NOW, STALE).splitlines() == [
        "127.0.0.1:1    |  0s|ok            |10.11.6-MariaDB|rw|ROW|>>,GTID",
        "+ 127.0.0.1:2  |120s|ok            |10.11.6-MariaDB|ro|ROW|>>,GTID",
        "  + 127.0.0.1:3|null|nonreplicating|10.11.6-MariaDB|ro|ROW|>>,GTID",
        "+ 127.0.0.1:4  |  0s|ok            |10.11.6-MariaDB|ro|ROW|GTID   ",
    ]


def test_tabulated_and_bracketed_trees_carry_the_same_facts() -> None:
    view = _tabulated_view()
    for bracketed, tabulated in zip(
        ascii_tree(view, NOW, STALE).splitlines(), tabulated_tree(view, NOW, STALE).splitlines(), strict=True
    ):
        name, _, facts = bracketed.partition(" [")
        cells = [c.strip() for c in tabulated.split("|")]
        assert cells[0] == name.strip()
        assert ",".join(c for c in cells[1:] if c) == facts.rstrip("]")


def test_tabulate_pads_short_rows_and_aligns_the_chosen_columns_right() -> None:
    assert tabulate([["a", "1", "x"], ["bbb", "22"]]) == ["a  | 1|x", "bbb|22| "]
    assert tabulate([["a", "1"], ["bb", "22"]], separator=" ", right=frozenset()) == ["a  1 ", "bb 22"]
    assert tabulate([]) == []
