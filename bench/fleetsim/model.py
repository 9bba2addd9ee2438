"""The scripted model of a replication fleet: what every simulated MariaDB 10.11 would answer, and when.

Pure (no I/O): every answer is a function of the model's state and a time `now` the caller passes in
(`time.monotonic()` in the server, any number in tests). Positions are computed lazily from that time
instead of being advanced by a ticker, so an idle fleet of 10,000 instances costs nothing:

- a writable master that is up and does not replicate writes `write_rate` transactions per second into
  GTID domain 0 (`0-<its server_id>-<seq>`); its binlog position grows with them;
- a replica whose IO thread is connected follows its master: received = the master's position now,
  applied = the master's position `lag_s` seconds ago (apply lag); `Seconds_Behind_Master` = the lag;
- heartbeats: a replica whose IO thread hears its master counts one per `heartbeat_period` seconds
  (MariaDB's `Slave_received_heartbeats`);
- when something changes (a control event or a write statement), the nodes of the affected clusters are
  first *settled*: their positions and heartbeat counts at that instant are stored, so the change only
  affects what follows.

How failures look, as MariaDB shows them:
- master **dead** (process gone, sockets closed): its replicas' IO threads at once `Connecting`, errno 2003
  "error reconnecting to master ... Can't connect to server ...", `Seconds_Behind_Master` NULL, heartbeats
  stop, positions frozen; it disappears from nobody's `SHOW SLAVE HOSTS` (it answers nothing);
- master **hung** (SIGSTOP): heartbeats and events stop at once, but the IO thread stays `Yes` until
  `slave_net_timeout` has passed, then `Connecting` with errno 2013 (the handshake never comes);
- replica IO / SQL **broken**: that thread `No` with the errno and text given (`Last_Errno`/`Last_Error`
  mirror the SQL thread's);
- **revive**: the instance answers again; replicas of it reconnect and catch up at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

UP, DEAD, HUNG = "up", "dead", "hung"
STATES = (UP, DEAD, HUNG)

VERSION = "10.11.19-MariaDB-log"
VERSION_COMMENT = "MariaDB Server"
BINLOG_FILE = "mysql-bin.000001"
RELAY_LOG_FILE = "relay-bin.000002"
EVENT_BYTES = 300  # binlog bytes per simulated transaction
BINLOG_HEADER = 330

Addr = tuple[str, int]


def addr_text(addr: Addr) -> str:
    return f"{addr[0]}:{addr[1]}"


def parse_addr(text: str) -> Addr:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


Gtid = tuple[int, int]  # (server_id that wrote it, sequence number) in domain 0


def gtid_text(g: Gtid | None) -> str:
    return "" if g is None or g[1] <= 0 else f"0-{g[0]}-{g[1]}"


def parse_gtid(text: str) -> Gtid | None:
    """`0-1-42` (domain 0; other domains are ignored) -> (1, 42); empty -> None."""
    for part in text.replace(" ", "").split(","):
        bits = part.split("-")
        if len(bits) == 3 and bits[0] == "0" and bits[1].isdigit() and bits[2].isdigit():
            return int(bits[1]), int(bits[2])
    return None


@dataclass(eq=False)
class Node:
    """One simulated MariaDB server."""

    addr: Addr
    server_id: int
    cluster: str
    started_at: float
    state: str = UP
    state_since: float = 0.0
    read_only: bool = False
    write_rate: float = 10.0
    # binlog position (what the server has, own writes and replicated ones), settled at `settled_at`
    pos: Gtid = (0, 0)
    received: Gtid = (0, 0)  # what the IO thread received
    slave_pos: Gtid | None = None  # gtid_slave_pos (None: never replicated)
    settled_at: float = 0.0
    # replication configuration (None: no SHOW SLAVE STATUS row)
    master: Addr | None = None
    master_user: str = "repl"
    master_server_id: int = 0
    connect_retry: int = 1
    heartbeat_period: float = 1.0
    using_gtid: str = "Slave_Pos"
    sql_delay: int = 0
    io_on: bool = False
    sql_on: bool = False
    io_errno: int = 0
    io_error: str = ""
    sql_errno: int = 0
    sql_error: str = ""
    lag_s: float = 0.0
    hb_base: int = 0
    hb_since: float | None = None  # receiving heartbeats since (None: not receiving)
    report_host: str = ""
    report_port: int = 0
    variables: dict[str, str] = field(default_factory=dict)  # other SET GLOBAL values

    @property
    def key(self) -> str:
        return addr_text(self.addr)


@dataclass(frozen=True)
class IOView:
    """The IO thread as SHOW SLAVE STATUS shows it at one instant."""

    running: str  # Yes / No / Connecting
    errno: int
    error: str
    receiving: bool  # events and heartbeats flow


class Fleet:
    """Nodes by address, with the replica index, and the rules above."""

    def __init__(self, *, slave_net_timeout: float = 60.0, hostname: str = "") -> None:
        """`hostname`: what every instance answers for @@hostname; empty: its own address (as in a
        fleet where each server has its own resolvable name)."""
        self.nodes: dict[Addr, Node] = {}
        self.children: dict[Addr, set[Addr]] = {}
        self.slave_net_timeout = slave_net_timeout
        self.hostname = hostname

    # --- building ---------------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        if node.addr in self.nodes:
            raise ValueError(f"{node.key} already exists")
        self.nodes[node.addr] = node
        if node.master is not None:
            self.children.setdefault(node.master, set()).add(node.addr)
        return node

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, addr: Addr | str) -> Node:
        a = parse_addr(addr) if isinstance(addr, str) else addr
        node = self.nodes.get(a)
        if node is None:
            raise KeyError(f"no simulated instance {addr_text(a)}")
        return node

    def replicas_of(self, addr: Addr) -> list[Node]:
        return [self.nodes[a] for a in sorted(self.children.get(addr, ())) if a in self.nodes]

    def cluster_nodes(self, cluster: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.cluster == cluster]

    # --- derived state ------------------------------------------------------------------------------
    def upstream(self, node: Node) -> Node | None:
        return self.nodes.get(node.master) if node.master is not None else None

    def io_view(self, node: Node, now: float) -> IOView:
        if node.master is None:
            return IOView("No", 0, "", False)
        if not node.io_on:
            return IOView("No", node.io_errno, node.io_error, False)
        up = self.upstream(node)
        where = f"'{node.master_user}@{addr_text(node.master)}'"
        retry = f"retry-time: {node.connect_retry}  maximum-retries: 100000"
        if up is None or up.state == DEAD or node.master[0].startswith("//"):
            host = node.master[0]
            msg = (
                f"error reconnecting to master {where} - {retry}  message: "
                f"Can't connect to server on '{host}' (111 \"Connection refused\")"
            )
            return IOView("Connecting", 2003, msg, False)
        if up.state == HUNG:
            if now - up.state_since < self.slave_net_timeout:
                return IOView("Yes", 0, "", False)
            msg = (
                f"error reconnecting to master {where} - {retry}  message: Lost connection to server at "
                "'handshake: reading initial communication packet', system error: 110"
            )
            return IOView("Connecting", 2013, msg, False)
        return IOView("Yes", 0, "", True)

    def following(self, node: Node, now: float) -> bool:
        """Events from the master reach the relay log (IO thread connected and hearing)."""
        return node.state == UP and self.io_view(node, now).receiving

    def applying(self, node: Node, now: float) -> bool:
        return self.following(node, now) and node.sql_on

    def writes(self, node: Node) -> bool:
        return node.state == UP and not node.read_only and not (node.master is not None and node.io_on)

    def position(self, node: Node, now: float, depth: int = 0) -> Gtid:
        """The node's binlog position at `now` (not before its last settle)."""
        if depth > 16 or now <= node.settled_at:
            return node.pos
        if self.applying(node, now):
            up = self.upstream(node)
            assert up is not None
            theirs = self.position(up, now - node.lag_s - node.sql_delay, depth + 1)
            return theirs if theirs[1] > node.pos[1] else node.pos
        if self.writes(node) and node.write_rate > 0:
            extra = int((now - node.settled_at) * node.write_rate)
            if extra > 0:
                return node.server_id, node.pos[1] + extra
        return node.pos

    def received_position(self, node: Node, now: float) -> Gtid:
        if now > node.settled_at and self.following(node, now):
            up = self.upstream(node)
            assert up is not None
            theirs = self.position(up, now, 1)
            return theirs if theirs[1] > node.received[1] else node.received
        return node.received

    def heartbeats(self, node: Node, now: float) -> int:
        if node.hb_since is None or node.heartbeat_period <= 0:
            return node.hb_base
        return node.hb_base + int(max(0.0, now - node.hb_since) / node.heartbeat_period)

    def seconds_behind(self, node: Node, now: float) -> int | None:
        io = self.io_view(node, now)
        if node.master is None or io.running != "Yes" or not node.sql_on:
            return None
        if not io.receiving:
            return 0
        return int(node.lag_s + node.sql_delay)

    def registered_replicas(self, node: Node, now: float) -> list[Node]:
        """Replicas whose binlog dump thread runs on `node` (SHOW SLAVE HOSTS, the processlist)."""
        out = []
        for r in self.replicas_of(node.addr):
            if r.state == DEAD or not r.io_on:
                continue
            if self.io_view(r, now).running == "Yes":
                out.append(r)
        return out

    # --- change -------------------------------------------------------------------------------------
    def settle(self, nodes: Iterable[Node], now: float) -> None:
        """Store the positions and heartbeat counts of `nodes` at `now` (compute all, then assign)."""
        todo = list(nodes)
        values = [
            (n, self.position(n, now), self.received_position(n, now), self.heartbeats(n, now)) for n in todo
        ]
        for n, pos, received, beats in values:
            applied = pos if self.applying(n, now) else None
            n.pos = pos
            n.received = received
            if applied is not None and applied[1] > 0:
                n.slave_pos = applied
            n.settled_at = now
            n.hb_base = beats
            n.hb_since = None
        for n in todo:
            if self.following(n, now) and n.heartbeat_period > 0:
                n.hb_since = now
                up = self.upstream(n)
                if up is not None:
                    n.master_server_id = up.server_id

    def settle_clusters(self, now: float, *nodes: Node) -> None:
        names = {n.cluster for n in nodes}
        self.settle((n for n in self.nodes.values() if n.cluster in names), now)

    def set_state(self, node: Node, state: str, now: float) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r} (one of {', '.join(STATES)})")
        self.settle_clusters(now, node)
        if state != node.state:
            if node.state == DEAD:
                node.started_at = now  # a restarted server's Uptime starts again
            node.state = state
            node.state_since = now
        # heartbeat clocks and writer/follower modes restart from `now` under the new state
        self.settle_clusters(now, node)

    def set_master(self, node: Node, master: Addr | None) -> None:
        if node.master is not None:
            self.children.get(node.master, set()).discard(node.addr)
        node.master = master
        if master is not None:
            self.children.setdefault(master, set()).add(node.addr)
            up = self.nodes.get(master)
            if up is not None and up.cluster != node.cluster:
                for n in self._subtree(node):
                    n.cluster = up.cluster

    def _subtree(self, node: Node) -> list[Node]:
        out, todo, seen = [], [node], set()
        while todo:
            n = todo.pop()
            if n.addr in seen:
                continue
            seen.add(n.addr)
            out.append(n)
            todo.extend(self.replicas_of(n.addr))
        return out


def keep_shard(fleet: Fleet, index: int, count: int) -> Fleet:
    """Drop every cluster but those of shard `index` of `count` (cluster c<k> is in shard (k-1) % count):
    several simulator processes then serve one fleet built the same way, each its own clusters (a
    process holds one socket per instance plus one per client connection: 10,000 instances exceed
    one process's usual 20,000 file descriptors)."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist")
    for addr, node in list(fleet.nodes.items()):
        if (int(node.cluster[1:]) - 1) % count != index:
            del fleet.nodes[addr]
            fleet.children.pop(addr, None)
    return fleet


def loopback_addr(i: int, port: int) -> Addr:
    """The i-th loopback address (127.0.1.1, 127.0.1.2, ...): 250 per third octet, none in 127.0.0.x."""
    return f"127.0.{1 + i // 250}.{1 + i % 250}", port


@dataclass(frozen=True)
class ClusterShape:
    replicas: int = 2
    chain: bool = False  # the last replica replicates from the first one (an intermediate master)


def build_fleet(
    shapes: Iterable[ClusterShape],
    *,
    now: float,
    addressing: str = "ports",
    base_port: int = 23000,
    write_rate: float = 10.0,
    heartbeat_period: float = 1.0,
    slave_net_timeout: float = 60.0,
    start_seq: int = 100,
) -> Fleet:
    """Clusters of 1 master + N replicas (`chain`: the last replica hangs under the first replica).

    addressing "ports": every instance 127.0.0.1:<base_port + i>; "addrs": every instance its own
    loopback address (`loopback_addr`) on `base_port` — the DiscoverByShowSlaveHosts=false path (which
    assumes replicas listen on their master's port) only works so."""
    if addressing not in ("ports", "addrs"):
        raise ValueError("addressing must be 'ports' or 'addrs'")
    fleet = Fleet(slave_net_timeout=slave_net_timeout)
    i = 0

    def add(upstream: Node | None, gtid: Gtid) -> Node:
        nonlocal i
        addr = ("127.0.0.1", base_port + i) if addressing == "ports" else loopback_addr(i, base_port)
        i += 1
        node = Node(
            addr=addr,
            server_id=i,
            cluster=cluster,
            started_at=now,
            state_since=now,
            write_rate=write_rate,
            pos=gtid,
            settled_at=now,
            report_host=addr[0],
            report_port=addr[1],
        )
        if upstream is not None:  # a replica, replicating and caught up
            node.read_only = node.io_on = node.sql_on = True
            node.master, node.master_server_id = upstream.addr, upstream.server_id
            node.received = node.pos
            node.slave_pos = node.pos
            node.heartbeat_period, node.hb_since = heartbeat_period, now
        return fleet.add(node)

    for c, shape in enumerate(shapes):
        cluster = f"c{c + 1}"
        master = add(None, (i + 1, start_seq))
        first: Node | None = None
        for r in range(shape.replicas):
            upstream = first if (shape.chain and first is not None and r == shape.replicas - 1) else master
            node = add(upstream, master.pos)
            first = first or node
    return fleet


def mixed_shapes(n_instances: int, *, chain_every: int = 5) -> list[ClusterShape]:
    """Clusters of 1 master + 2..8 replicas (cycling) adding up to about `n_instances`; every
    `chain_every`-th cluster has a chain."""
    shapes: list[ClusterShape] = []
    total, k = 0, 0
    while total < n_instances:
        replicas = 2 + k % 7
        left = n_instances - total - 1
        replicas = max(0, min(replicas, left))
        shapes.append(
            ClusterShape(replicas=replicas, chain=replicas >= 2 and k % chain_every == chain_every - 1)
        )
        total += replicas + 1
        k += 1
    return shapes


def heartbeat_text(period: float) -> str:
    return f"{period:.3f}"
