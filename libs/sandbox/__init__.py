"""Real MariaDB replication topologies on loopback, for `baton sandbox` and the test fixtures."""

from libs.sandbox.sandbox import (
    REPL_PASSWORD,
    REPL_USER,
    SANDBOX_DB,
    TOPOLOGY_PASSWORD,
    TOPOLOGY_USER,
    Sandbox,
)
from libs.sandbox.spec import SHAPES, NodeOptions, NodeSpec, TopologySpec, shape

__all__ = [
    "REPL_PASSWORD",
    "REPL_USER",
    "SANDBOX_DB",
    "SHAPES",
    "TOPOLOGY_PASSWORD",
    "TOPOLOGY_USER",
    "NodeOptions",
    "NodeSpec",
    "Sandbox",
    "TopologySpec",
    "shape",
]
