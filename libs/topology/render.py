"""A cluster as a tree, in orchestrator's ascii-topology style (pure: no I/O, `now` passed in).

    127.0.0.1:23306   [0s,ok,10.11.6-MariaDB,rw,ROW,>>,GTID]
    + 127.0.0.1:23307 [0s,ok,10.11.6-MariaDB,ro,ROW,>>,GTID]
    + 127.0.0.1:23308 [null,nonreplicating,10.11.6-MariaDB,ro,ROW,>>,GTID]

The bracket says: replication lag, status (ok / nonreplicating / unreachable / lost / downtimed), version,
ro/rw, binlog format, `>>` when the instance logs what it replicates (log_slave_updates), and the GTID
flavor in use. `TreeLine`s carry the same facts for richer renderers (the CLI's coloured tree).

`tabulated_tree` is orchestrator's `topology-tabulated`: the same facts as `|`-separated columns, each
padded to its widest cell (the lag right-aligned, the rest left-aligned, the extras `>>,GTID` one
column), as orchestrator's `ASCIITopology(..., tabulated=true)` lays them out:

    127.0.0.1:23306  |0s|ok|10.11.6-MariaDB|rw|ROW|>>,GTID
    + 127.0.0.1:23307|0s|ok|10.11.6-MariaDB|ro|ROW|>>,GTID
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from libs.models import Flavor, InstanceKey
from libs.topology.view import ClusterView, InstanceState


class TreeLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    depth: int
    key: InstanceKey
    status: str  # ok, nonreplicating, unreachable, downtimed
    lag: str
    version: str
    writable: bool
    binlog_format: str
    logs_replica_updates: bool
    gtid: str

    @property
    def name(self) -> str:
        """The instance as the tree shows it: indented by depth, `+ ` before a replica."""
        prefix = "  " * (self.depth - 1) + "+ " if self.depth else ""
        return f"{prefix}{self.key}"

    def columns(self) -> list[str]:
        """orchestrator's description tokens: lag, status, version, rw/ro, binlog format, and the extras
        (`>>`, the GTID flavor) joined by commas in one last token, empty when there are none."""
        extras = [">>"] if self.logs_replica_updates else []
        if self.gtid:
            extras.append(self.gtid)
        return [
            self.lag,
            self.status,
            self.version or "?",
            "rw" if self.writable else "ro",
            self.binlog_format or "nobinlog",
            ",".join(extras),
        ]

    def text(self, width: int = 0) -> str:
        facts = [token for token in self.columns() if token]
        return f"{self.name.ljust(width)} [{','.join(facts)}]"


def _status(state: InstanceState, now: datetime, stale_after: timedelta) -> str:
    if state.downtimed:
        return "downtimed"
    if not state.is_valid(now, stale_after):
        return "unreachable"
    repl = state.info.replication
    if repl is not None and not repl.replicating:
        return "nonreplicating"
    return "ok"


def _line(state: InstanceState, depth: int, now: datetime, stale_after: timedelta) -> TreeLine:
    info = state.info
    repl = info.replication
    if repl is None:
        lag = "0s"
    elif repl.seconds_behind_master is None:
        lag = "null"
    else:
        lag = f"{repl.seconds_behind_master}s"
    uses_gtid = (
        bool(info.gtid_current_pos or info.gtid_slave_pos)
        if info.flavor is Flavor.MARIADB
        else info.gtid_mode.upper() == "ON"
    )
    return TreeLine(
        depth=depth,
        key=state.key,
        status=_status(state, now, stale_after),
        lag=lag,
        version=info.version,
        writable=not info.read_only,
        binlog_format=info.binlog_format if info.log_bin else "",
        logs_replica_updates=info.log_bin and info.log_slave_updates,
        gtid="GTID" if uses_gtid else "",
    )


def tree_lines(view: ClusterView, now: datetime, stale_after: timedelta) -> list[TreeLine]:
    """Depth-first lines, masters first (live, then writable, then by key), replicas sorted by key.
    Cycles (co-masters) print once."""
    seen: set[InstanceKey] = set()

    def walk(state: InstanceState, depth: int) -> Iterator[TreeLine]:
        if state.key in seen:
            return
        seen.add(state.key)
        yield _line(state, depth, now, stale_after)
        for child in view.replicas_of(state.key):
            yield from walk(child, depth + 1)

    lines: list[TreeLine] = []
    # the live master first: after a failover the dead old master is a second root, listed after it
    for top in sorted(view.masters, key=lambda s: (not s.is_valid(now, stale_after), s.info.read_only)):
        lines.extend(walk(top, 0))
    for state in view.instances:  # members of a ring with no master outside it
        lines.extend(walk(state, 0))
    return lines


def ascii_tree(view: ClusterView, now: datetime, stale_after: timedelta) -> str:
    lines = tree_lines(view, now, stale_after)
    width = max((len(ln.name) for ln in lines), default=0)
    return "\n".join(ln.text(width) for ln in lines)


def tabulated_tree(view: ClusterView, now: datetime, stale_after: timedelta) -> str:
    """The tree as `|`-separated columns: the name, then `TreeLine.columns()`."""
    return "\n".join(tabulate([[ln.name, *ln.columns()] for ln in tree_lines(view, now, stale_after)]))


def tabulate(
    rows: list[list[str]], separator: str = "|", right: frozenset[int] = frozenset({1})
) -> list[str]:
    """Rows of cells as lines: every column padded to its widest cell (a short row gets empty cells),
    left-aligned except the columns in `right`; orchestrator's golib `Tabulate` with the tree's
    directions (name left, lag right, the rest left). Trailing padding is kept, as orchestrator's is."""
    count = max((len(row) for row in rows), default=0)
    full = [row + [""] * (count - len(row)) for row in rows]
    widths = [max(len(row[i]) for row in full) for i in range(count)]
    return [
        separator.join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in full
    ]
