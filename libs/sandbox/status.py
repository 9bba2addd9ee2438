"""`baton sandbox status`: who replicates from whom, as the servers say it right now.

The tree follows each node's live `Master_Host:Master_Port` (not the spec), so a repointed replica shows
under its new master; a node that is down shows under its spec master, marked DOWN.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.tree import Tree

from libs.sandbox.sandbox import Sandbox


@dataclass(frozen=True)
class NodeStatus:
    name: str
    port: int
    pid: int
    up: bool
    server_id: int | None = None
    read_only: bool | None = None
    gtid: str = ""
    master_port: int | None = None
    io: str = ""
    sql: str = ""
    lag: int | None = None
    last_error: str = ""


async def _node_status(sb: Sandbox, name: str) -> NodeStatus:
    node = sb.node(name)
    base = NodeStatus(name=name, port=node.port, pid=node.pid, up=False)
    if not sb.is_running(name):
        return base
    try:
        async with asyncio.timeout(3.0):
            (var,) = await sb.sql(
                name, "SELECT @@server_id AS id, @@read_only AS ro, @@gtid_current_pos AS gtid"
            )
            rows = await sb.sql(name, "SHOW SLAVE STATUS")
    except Exception as exc:  # noqa: BLE001 - shown, not raised
        return NodeStatus(name=name, port=node.port, pid=node.pid, up=False, last_error=str(exc)[:120])
    row = rows[0] if rows else None
    return NodeStatus(
        name=name,
        port=node.port,
        pid=node.pid,
        up=True,
        server_id=int(var["id"]),
        read_only=bool(int(var["ro"])),
        gtid=str(var["gtid"] or ""),
        master_port=int(row["Master_Port"]) if row and row["Master_Host"] else None,
        io=str(row["Slave_IO_Running"]) if row else "",
        sql=str(row["Slave_SQL_Running"]) if row else "",
        lag=row["Seconds_Behind_Master"] if row else None,
        last_error=str(row["Last_IO_Error"] or row["Last_SQL_Error"]) if row else "",
    )


async def collect(sb: Sandbox) -> list[NodeStatus]:
    return list(await asyncio.gather(*(_node_status(sb, n) for n in sb.names)))


def _label(s: NodeStatus) -> str:
    head = f"{s.name} 127.0.0.1:{s.port}"
    if not s.up:
        return f"{head} [bold red]DOWN[/]" + (f" ({s.last_error})" if s.last_error else "")
    parts = [head, f"server_id={s.server_id}", "ro" if s.read_only else "[green]rw[/]"]
    if s.io or s.sql:
        ok = s.io == "Yes" and s.sql == "Yes"
        color = "green" if ok else "red"
        parts.append(f"[{color}]io={s.io} sql={s.sql}[/]")
        if s.lag is not None:
            parts.append(f"lag={s.lag}s")
        if s.last_error:
            parts.append(f"[red]{s.last_error[:80]}[/]")
    parts.append(f"gtid={s.gtid or '-'}")
    return " ".join(parts)


def render(sb: Sandbox, statuses: list[NodeStatus]) -> Tree:
    """A rich Tree rooted at the sandbox, children under their live master."""
    by_port = {s.port: s for s in statuses}
    parent: dict[str, str | None] = {}
    for s in statuses:
        if s.up:
            master = by_port.get(s.master_port) if s.master_port else None
            parent[s.name] = master.name if master else None
        else:
            parent[s.name] = sb.spec.node(s.name).master
    tree = Tree(f"sandbox [bold]{sb.spec.shape}[/] in {sb.base_dir}")
    branches: dict[str, Tree] = {}

    def add(name: str, under: Tree) -> None:
        if name in branches:
            return
        branches[name] = under.add(_label(next(s for s in statuses if s.name == name)))
        for child in (s.name for s in statuses if parent[s.name] == name):
            add(child, branches[name])

    for s in statuses:
        if parent[s.name] is None:
            add(s.name, tree)
    for s in statuses:  # replication cycles: show what is left at the top
        if s.name not in branches:
            add(s.name, tree)
    return tree
