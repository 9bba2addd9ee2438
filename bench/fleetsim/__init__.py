"""A fleet simulator: thousands of MySQL-protocol instances (MariaDB 10.11 as Baton's probe sees it),
served from one asyncio process, answering from a scripted replication model that can be made to die,
hang, lag, break replication or come back (issue 18, item 1).

- `model`: the pure replication model (clusters, GTID positions, heartbeats, failure reactions);
- `protocol`: the server side of the MySQL protocol asyncmy speaks (multi-statement, multi-result);
- `sql`: which statements are answered and how;
- `server`: `FleetSimulator` (listeners, Python control API, JSON-lines control channel) and
  `ControlClient`;
- `python -m bench.fleetsim --instances N`: run one as a process (prints a ready line with the control
  port; stops on SIGINT/SIGTERM).
"""

from bench.fleetsim.model import ClusterShape, Fleet, Node, build_fleet, mixed_shapes
from bench.fleetsim.server import ControlClient, FleetSimulator

__all__ = ["ClusterShape", "ControlClient", "Fleet", "FleetSimulator", "Node", "build_fleet", "mixed_shapes"]
