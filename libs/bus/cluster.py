"""A local N-node JetStream cluster on loopback: for HA tests, chaos tests and benchmarks.

Each node has its own client port, route port, monitoring port, server name and store dir; every node
lists every route (itself included, which nats-server ignores), so any subset can re-form the cluster.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from libs.bus.server import ClusterConfig, NatsServer, free_port, http_get
from libs.errors import BusError


class NatsCluster:
    """`size` NatsServer nodes forming one JetStream cluster; nodes can be killed and restarted."""

    def __init__(self, base_dir: str | Path, size: int = 3, *, name: str = "baton", host: str = "127.0.0.1"):
        base = Path(base_dir)
        route_ports = [free_port(host) for _ in range(size)]
        routes = [f"nats-route://{host}:{p}" for p in route_ports]
        self.nodes = [
            NatsServer(
                base / f"n{i}",
                host=host,
                server_name=f"{name}-n{i}",
                cluster=ClusterConfig(name=name, port=route_ports[i], routes=list(routes)),
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """All client URLs, comma-separated (what `connect()` and config files accept)."""
        return ",".join(self.urls)

    def start(self, i: int | None = None) -> None:
        """Start node `i` (or every node not running)."""
        for node in self.nodes if i is None else [self.nodes[i]]:
            node.start()

    def kill(self, i: int) -> None:
        """SIGKILL node `i` (a crash)."""
        self.nodes[i].kill()

    def stop(self, i: int | None = None) -> None:
        """Stop node `i` gracefully (or every node)."""
        for node in self.nodes if i is None else [self.nodes[i]]:
            node.stop()

    def meta_leader(self) -> str | None:
        """The JetStream meta leader's server name as any running node reports it, else None."""
        for node in self.nodes:
            if not node.running:
                continue
            status, body = http_get(node.host, node.monitor_port, "/jsz")
            if status != 200:
                continue
            try:
                leader = json.loads(body).get("meta_cluster", {}).get("leader")
            except ValueError:
                continue
            if leader:
                return str(leader)
        return None

    def wait_meta_leader(self, timeout_s: float = 15.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.meta_leader()
            if leader:
                return leader
            time.sleep(0.05)
        raise BusError(f"no JetStream meta leader after {timeout_s:g}s")

    def __enter__(self) -> NatsCluster:
        try:
            self.start()
            self.wait_meta_leader()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
