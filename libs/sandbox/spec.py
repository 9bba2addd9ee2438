"""Declarative sandbox shapes: a topology is a list of node specs (name, master, options).

Tests ask for custom shapes by building a `TopologySpec` directly; the CLI picks a named one from
`SHAPES`. Validation refuses shapes that cannot replicate (unknown master, cycles, a node with
replicas but no binary log, an intermediate master without log_slave_updates). The one cycle allowed is
a co-master ring: a root naming one of its direct replicas as `co_master` also replicates from it, set
up once the tree replicates (as `make-co-master` would).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from libs.errors import SandboxError

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,30}$"


class NodeOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    log_bin: bool = True
    log_slave_updates: bool = True
    sql_delay: int = Field(default=0, ge=0)  # MASTER_DELAY seconds (replicas only)
    semi_sync: bool = False  # master side on nodes with replicas, replica side on replicas
    read_only: bool | None = None  # None: replicas read_only, roots writable
    extra_args: tuple[str, ...] = ()  # more mariadbd options, e.g. ("--rpl-semi-sync-master-timeout=500",)


class NodeSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    master: str | None = None
    options: NodeOptions = NodeOptions()
    co_master: str | None = None  # a root only: one of its direct replicas it also replicates from

    @property
    def read_only(self) -> bool:
        return self.options.read_only if self.options.read_only is not None else self.master is not None


class TopologySpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    shape: str = "custom"
    nodes: tuple[NodeSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> TopologySpec:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate node names in {names}")
        by_name = {n.name: n for n in self.nodes}
        for node in self.nodes:
            if node.co_master is not None:
                partner = by_name.get(node.co_master)
                if node.master is not None or partner is None or partner.master != node.name:
                    raise ValueError(
                        f"co_master {node.co_master!r} of {node.name!r}: not a root's direct replica"
                    )
            if node.master is None:
                continue
            master = by_name.get(node.master)
            if master is None:
                raise ValueError(f"node {node.name!r} replicates from unknown node {node.master!r}")
            if not master.options.log_bin:
                raise ValueError(f"node {node.master!r} has replicas but no binary log")
            if master.master is not None and not master.options.log_slave_updates:
                raise ValueError(f"intermediate master {master.name!r} needs log_slave_updates")
            seen = {node.name}
            cur: NodeSpec | None = master
            while cur is not None:
                if cur.name in seen:
                    raise ValueError(f"replication cycle through {cur.name!r}")
                seen.add(cur.name)
                cur = by_name.get(cur.master) if cur.master else None
        if not any(n.master is None for n in self.nodes):
            raise ValueError("no root (master) node")
        return self

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise SandboxError(f"no node named {name!r} in this sandbox (nodes: {', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def depth(self, name: str) -> int:
        node, d = self.node(name), 0
        while node.master is not None:
            node, d = self.node(node.master), d + 1
        return d

    def replicas_of(self, name: str) -> list[NodeSpec]:
        return [n for n in self.nodes if n.master == name]


def master_replicas(replicas: int = 3) -> TopologySpec:
    """1 master + N direct replicas (the default sandbox)."""
    nodes = [NodeSpec(name="master")]
    nodes += [NodeSpec(name=f"replica{i}", master="master") for i in range(1, replicas + 1)]
    return TopologySpec(shape="replicas", nodes=tuple(nodes))


def chain(replicas: int = 3) -> TopologySpec:
    """master -> intermediate -> replica1, replica2; plus replica3 directly under the master."""
    del replicas
    return TopologySpec(
        shape="chain",
        nodes=(
            NodeSpec(name="master"),
            NodeSpec(name="intermediate", master="master"),
            NodeSpec(name="replica1", master="intermediate"),
            NodeSpec(name="replica2", master="intermediate"),
            NodeSpec(name="replica3", master="master"),
        ),
    )


def delayed(replicas: int = 2, delay: int = 3600) -> TopologySpec:
    """1 master + N replicas + `delayed` (MASTER_DELAY=`delay`)."""
    base = master_replicas(replicas).nodes
    extra = NodeSpec(name="delayed", master="master", options=NodeOptions(sql_delay=delay))
    return TopologySpec(shape="delayed", nodes=(*base, extra))


def nolog(replicas: int = 1) -> TopologySpec:
    """1 master + N normal replicas + `nolsu` (log_slave_updates off) + `nobinlog` (no binary log)."""
    base = master_replicas(replicas).nodes
    return TopologySpec(
        shape="nolog",
        nodes=(
            *base,
            NodeSpec(name="nolsu", master="master", options=NodeOptions(log_slave_updates=False)),
            NodeSpec(
                name="nobinlog",
                master="master",
                options=NodeOptions(log_bin=False, log_slave_updates=False),
            ),
        ),
    )


def semisync(replicas: int = 3) -> TopologySpec:
    """1 master + N replicas with MariaDB's built-in semi-sync enabled on both sides (2 s timeout)."""
    on = NodeOptions(semi_sync=True, extra_args=("--rpl-semi-sync-master-timeout=2000",))
    nodes = [NodeSpec(name="master", options=on)]
    nodes += [NodeSpec(name=f"replica{i}", master="master", options=on) for i in range(1, replicas + 1)]
    return TopologySpec(shape="semisync", nodes=tuple(nodes))


def comasters(replicas: int = 1) -> TopologySpec:
    """A co-master ring: `master1` (writable) and `master2` (read-only) replicate from each other, with N
    replicas under each (`replica1_1`.., `replica2_1`..)."""
    nodes = [NodeSpec(name="master1", co_master="master2"), NodeSpec(name="master2", master="master1")]
    for side in (1, 2):
        nodes += [NodeSpec(name=f"replica{side}_{i}", master=f"master{side}") for i in range(1, replicas + 1)]
    return TopologySpec(shape="comasters", nodes=tuple(nodes))


SHAPES: dict[str, Callable[[int], TopologySpec]] = {
    "replicas": master_replicas,
    "chain": chain,
    "delayed": delayed,
    "nolog": nolog,
    "semisync": semisync,
    "comasters": comasters,
}


def shape(name: str, replicas: int = 3) -> TopologySpec:
    """A named shape. `replicas` sizes the shapes that have a variable number of plain replicas."""
    factory = SHAPES.get(name)
    if factory is None:
        raise SandboxError(f"unknown sandbox shape {name!r} (known: {', '.join(SHAPES)})")
    if replicas < 0:
        raise SandboxError("--replicas must be >= 0")
    return factory(replicas)
