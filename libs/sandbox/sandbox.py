"""A real MariaDB replication topology on loopback: start, inspect, break and stop it.

Used by `baton sandbox up|down|status` and by the pytest fixtures (same code). Every node is a
`mariadbd` on a free 127.0.0.1 port with its own data dir under `<base>/nodes/<name>`; replicas use
MariaDB GTID (`MASTER_USE_GTID=slave_pos`), connect retry 1 s and heartbeat 1 s. The topology user and
the replication user are created on every node with `sql_log_bin=0` (no binlog events, so every node
starts with the same empty GTID state and any node can later be promoted or repointed without waiting
for users to replicate down a chain). `start()` returns only when every replica replicates and (unless
delayed) has applied the master's marker write; `stop()` leaves no process and no node data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncmy  # type: ignore[import-untyped]
from asyncmy.cursors import DictCursor  # type: ignore[import-untyped]
from pydantic import SecretStr

from libs.errors import SandboxError
from libs.models import InstanceKey, utcnow
from libs.mysql.connection import Credentials
from libs.mysql.dialect import dialect_for
from libs.sandbox import server
from libs.sandbox.spec import NodeOptions, NodeSpec, TopologySpec, master_replicas
from libs.sandbox.state import NodeState, SandboxState, load_state, save_state, state_path

TOPOLOGY_USER = "baton"
TOPOLOGY_PASSWORD = "baton-sandbox"  # noqa: S105 - a throwaway loopback sandbox, documented
REPL_USER = "repl"
REPL_PASSWORD = "repl-sandbox"  # noqa: S105
SANDBOX_DB = "baton_sandbox"
TOPOLOGY_GRANTS = (
    "SUPER, REPLICATION CLIENT, REPLICATION SLAVE, PROCESS, RELOAD, SELECT, "
    "READ_ONLY ADMIN, SLAVE MONITOR, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, BINLOG ADMIN, "
    "CONNECTION ADMIN"
)
_MAX_SOCKET_PATH = 100
_START_ATTEMPTS = 3


class Sandbox:
    """One topology under `base_dir`. Create with a spec and `start()`, or `attach()` to a running one."""

    def __init__(
        self,
        base_dir: Path | str,
        spec: TopologySpec | None = None,
        *,
        slave_net_timeout: int = 4,
        template_dir: Path | None = None,
        base_port: int | None = None,
        placement: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).expanduser().resolve()
        self.spec = spec or master_replicas(3)
        self.slave_net_timeout = slave_net_timeout
        self.template_dir = template_dir or self.base_dir / "template"
        # Stable ports (base_port, base_port+1, ...) when free, so a restarted sandbox keeps its instance
        # keys (what `baton up --sandbox` wants across restarts); otherwise any free port.
        self.base_port = base_port
        # node name → (network namespace, address): nodes of a chaos test's data centers. Unplaced nodes
        # listen on 127.0.0.1 here. Administration goes through unix sockets, which namespaces don't split.
        self.placement = dict(placement or {})
        self._nodes: dict[str, NodeState] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._socket_dir: Path | None = None

    # --- identity ---------------------------------------------------------------------------------
    @classmethod
    def attach(cls, base_dir: Path | str) -> Sandbox:
        """The sandbox whose state file is in `base_dir` (started by this or another process)."""
        base = Path(base_dir).expanduser().resolve()
        state = load_state(base)
        if state is None:
            raise SandboxError(f"no sandbox in {base}")
        sb = cls(base, state.spec, slave_net_timeout=state.slave_net_timeout)
        sb._nodes = {n.name: n for n in state.nodes}
        sb._socket_dir = state.socket_dir
        return sb

    @property
    def names(self) -> list[str]:
        return self.spec.names

    @property
    def master(self) -> str:
        """The first root node of the spec."""
        return next(n.name for n in self.spec.nodes if n.master is None)

    @property
    def topology_creds(self) -> Credentials:
        return Credentials(user=TOPOLOGY_USER, password=SecretStr(TOPOLOGY_PASSWORD))

    @property
    def repl_creds(self) -> Credentials:
        return Credentials(user=REPL_USER, password=SecretStr(REPL_PASSWORD))

    def node(self, name: str) -> NodeState:
        self.spec.node(name)  # SandboxError naming the known nodes
        try:
            return self._nodes[name]
        except KeyError:
            raise SandboxError(f"sandbox node {name!r} was never started") from None

    def key(self, name: str) -> InstanceKey:
        node = self.node(name)
        return InstanceKey(host=node.host, port=node.port)

    def name_of(self, key: InstanceKey) -> str | None:
        return next((n.name for n in self._nodes.values() if n.port == key.port), None)

    @property
    def pids(self) -> dict[str, int]:
        return {name: n.pid for name, n in self._nodes.items()}

    def is_running(self, name: str) -> bool:
        node = self.node(name)
        proc = self._procs.get(name)
        if proc is not None:
            return proc.poll() is None
        return server.is_ours(node.pid, node.datadir)

    # --- SQL as root over the unix socket -------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _root(self, name: str, connect_timeout: float = 5.0) -> AsyncIterator[Any]:
        node = self.node(name)
        conn = await asyncmy.connect(
            unix_socket=str(node.socket),
            user="root",
            password="",
            connect_timeout=connect_timeout,
            autocommit=True,
        )
        try:
            yield conn
        finally:
            conn.close()

    async def sql(self, name: str, stmt: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run one statement as root on `name`; returns its rows as dicts (empty for non-queries)."""
        async with self._root(name) as conn, conn.cursor(DictCursor) as cur:
            await cur.execute(stmt, params)
            return list(await cur.fetchall() or [])

    async def script(self, name: str, stmts: Sequence[str | tuple[str, Sequence[Any]]]) -> None:
        async with self._root(name) as conn, conn.cursor() as cur:
            for item in stmts:
                sql, params = (item, None) if isinstance(item, str) else item
                await cur.execute(sql, params)

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self, within: float = 60.0) -> None:
        """Start every node and wire replication; on any failure everything started is stopped."""
        existing = load_state(self.base_dir)
        if existing is not None:
            if any(server.is_ours(n.pid, n.datadir) for n in existing.nodes):
                raise SandboxError(f"a sandbox is already running in {self.base_dir}: run `sandbox down`")
            await Sandbox.attach(self.base_dir).stop()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        template = await asyncio.to_thread(server.ensure_template, self.template_dir)
        try:
            async with asyncio.timeout(within):
                await self._lay_out(template)
                await asyncio.gather(*(self._boot(name) for name in self.names))
                self._save()
                await self._configure()
        except TimeoutError:
            await self.stop()
            raise SandboxError(f"sandbox did not come up within {within:g}s") from None
        except BaseException:
            await self.stop()
            raise

    async def _lay_out(self, template: Path) -> None:
        nodes_dir = self.base_dir / "nodes"
        if len(str(nodes_dir / ("x" * 32) / "mysqld.sock")) > _MAX_SOCKET_PATH:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="baton-sb-"))
        ports: set[int] = set()
        for i, spec in enumerate(self.spec.nodes, start=1):
            wanted = self.base_port + i - 1 if self.base_port else None
            port = wanted if wanted and server.port_is_free(wanted) else server.free_port()
            while port in ports:
                port = server.free_port()
            ports.add(port)
            home = nodes_dir / spec.name
            sock_dir = self._socket_dir or home
            netns, host = self.placement.get(spec.name, (None, "127.0.0.1"))
            self._nodes[spec.name] = NodeState(
                name=spec.name,
                server_id=i,
                port=port,
                datadir=home / "data",
                socket=sock_dir / f"{spec.name}.sock" if self._socket_dir else home / "mysqld.sock",
                log_error=home / "error.log",
                host=host,
                netns=netns,
            )
        await asyncio.gather(
            *(
                asyncio.to_thread(shutil.copytree, template, n.datadir, symlinks=True)
                for n in self._nodes.values()
            )
        )

    async def add_replica(self, name: str, master: str, options: NodeOptions | None = None) -> InstanceKey:
        """Start one more node replicating from `master` (a replica that appears later) and wait until it
        replicates. The spec grows by that node, so `stop()`, `status` and `down` include it."""
        if name in self._nodes:
            raise SandboxError(f"sandbox node {name!r} exists already")
        node_spec = NodeSpec(name=name, master=master, options=options or NodeOptions())
        self.spec = TopologySpec(shape=self.spec.shape, nodes=(*self.spec.nodes, node_spec))
        template = await asyncio.to_thread(server.ensure_template, self.template_dir)
        home = self.base_dir / "nodes" / name
        sock_dir = self._socket_dir or home
        taken = {n.port for n in self._nodes.values()}
        port = server.free_port()
        while port in taken:
            port = server.free_port()
        netns, host = self.placement.get(name, (None, "127.0.0.1"))
        self._nodes[name] = NodeState(
            name=name,
            server_id=max(n.server_id for n in self._nodes.values()) + 1,
            port=port,
            datadir=home / "data",
            socket=sock_dir / f"{name}.sock" if self._socket_dir else home / "mysqld.sock",
            log_error=home / "error.log",
            host=host,
            netns=netns,
        )
        await asyncio.to_thread(shutil.copytree, template, self._nodes[name].datadir, symlinks=True)
        await self._boot(name)
        self._save()
        await self._create_users(name)
        await self._replicate(name)
        await self.wait_replicating(name)
        return self.key(name)

    def _argv(self, node: NodeState, semi_sync: bool) -> list[str]:
        return server.mariadbd_argv(
            self.spec.node(node.name),
            server_id=node.server_id,
            port=node.port,
            datadir=node.datadir,
            sock=node.socket,
            log_error=node.log_error,
            slave_net_timeout=self.slave_net_timeout,
            semi_sync=semi_sync,
            host=node.host,
        )

    async def _boot(self, name: str, *, semi_sync: bool = False) -> None:
        """Spawn `name` and wait until root can log in; retries on a port taken meanwhile."""
        for attempt in range(_START_ATTEMPTS):
            node = self._nodes[name]
            proc = server.spawn(self._argv(node, semi_sync), node.log_error, node.netns)
            self._procs[name] = proc
            self._nodes[name] = node.model_copy(update={"pid": proc.pid})
            failure = await self._wait_ready(name)
            if failure is None:
                return
            if failure == "port in use" and attempt + 1 < _START_ATTEMPTS:
                port = server.free_port()
                self._nodes[name] = self._nodes[name].model_copy(update={"port": port})
                continue
            raise SandboxError(f"mariadbd {name} (port {node.port}) failed to start: {failure}")

    async def _wait_ready(self, name: str) -> str | None:
        proc = self._procs[name]
        while True:
            if proc.poll() is not None:
                return server.startup_failure(self._nodes[name].log_error)
            try:
                async with self._root(name, connect_timeout=1.0):
                    return None
            except Exception:  # noqa: BLE001 - not up yet
                await asyncio.sleep(0.02)

    async def _configure(self) -> None:
        await asyncio.gather(*(self._create_users(name) for name in self.names))
        replicas = [n for n in self.spec.nodes if n.master is not None]
        await asyncio.gather(*(self._replicate(n.name) for n in replicas))
        await asyncio.gather(*(self.wait_replicating(n.name) for n in replicas))
        positions: dict[str, str] = {}
        for root in (n.name for n in self.spec.nodes if n.master is None):
            await self.script(
                root,
                [
                    f"CREATE DATABASE IF NOT EXISTS {SANDBOX_DB}",
                    f"CREATE TABLE IF NOT EXISTS {SANDBOX_DB}.marker (id INT PRIMARY KEY, note VARCHAR(64))",
                    (f"REPLACE INTO {SANDBOX_DB}.marker VALUES (1, %s)", (f"sandbox {self.spec.shape}",)),
                ],
            )
            positions[root] = str((await self.sql(root, "SELECT @@gtid_binlog_pos AS p"))[0]["p"])
        waits = [
            self.wait_gtid(n.name, positions[self._root_of(n.name)])
            for n in replicas
            if not self._delayed_path(n.name)
        ]
        await asyncio.gather(*waits)
        await asyncio.gather(*(self._close_ring(n.name) for n in self.spec.nodes if n.co_master))
        await self._enable_semi_sync()

    async def _close_ring(self, name: str) -> None:
        """Root `name` replicates from its co-master too (the ring), from what it wrote itself on."""
        partner = self.spec.node(name).co_master
        assert partner is not None
        dialect = dialect_for("10.11.0-MariaDB")
        own = str((await self.sql(name, "SELECT @@gtid_binlog_pos AS p"))[0]["p"])
        change = dialect.change_master_gtid(self.key(partner), REPL_USER, REPL_PASSWORD)
        await self.script(name, [("SET GLOBAL gtid_slave_pos = %s", (own,)), change, dialect.start_replica()])
        await self.wait_replicating(name)

    async def _enable_semi_sync(self) -> None:
        """Switch semi-sync on where the spec asks for it, now that replication runs."""
        masters = [n.name for n in self.spec.nodes if n.options.semi_sync and self.spec.replicas_of(n.name)]
        replicas = [n.name for n in self.spec.nodes if n.options.semi_sync and n.master is not None]
        await asyncio.gather(
            *(self.sql(name, "SET GLOBAL rpl_semi_sync_master_enabled = 1") for name in masters)
        )
        restart_io = [
            "SET GLOBAL rpl_semi_sync_slave_enabled = 1",
            "STOP SLAVE IO_THREAD",
            "START SLAVE IO_THREAD",
        ]
        await asyncio.gather(*(self.script(name, restart_io) for name in replicas))
        await asyncio.gather(*(self.wait_replicating(name) for name in replicas))
        await asyncio.gather(*(self._wait_semi_sync_clients(name) for name in masters))

    async def _wait_semi_sync_clients(self, master: str, within: float = 10.0) -> None:
        """The IO thread shows Yes slightly before the master counts it as a semi-sync client."""
        want = sum(1 for n in self.spec.replicas_of(master) if n.options.semi_sync)
        async with asyncio.timeout(within):
            while True:
                rows = await self.sql(master, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
                if rows and int(rows[0]["Value"]) >= want:
                    return
                await asyncio.sleep(0.02)

    async def _create_users(self, name: str) -> None:
        await self.script(
            name,
            [
                "SET SESSION sql_log_bin = 0",
                (f"CREATE USER IF NOT EXISTS '{TOPOLOGY_USER}'@'%%' IDENTIFIED BY %s", (TOPOLOGY_PASSWORD,)),
                f"GRANT {TOPOLOGY_GRANTS} ON *.* TO '{TOPOLOGY_USER}'@'%'",
                (f"CREATE USER IF NOT EXISTS '{REPL_USER}'@'%%' IDENTIFIED BY %s", (REPL_PASSWORD,)),
                f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%'",
                "SET SESSION sql_log_bin = 1",
            ],
        )

    async def _replicate(self, name: str) -> None:
        spec = self.spec.node(name)
        assert spec.master is not None
        dialect = dialect_for("10.11.0-MariaDB")
        change = dialect.change_master_gtid(self.key(spec.master), REPL_USER, REPL_PASSWORD)
        stmts: list[str | tuple[str, Sequence[Any]]] = [change]
        if spec.options.sql_delay:
            stmts.append(("CHANGE MASTER TO MASTER_DELAY = %s", (spec.options.sql_delay,)))
        stmts.append(dialect.start_replica())
        await self.script(name, stmts)

    def _root_of(self, name: str) -> str:
        spec = self.spec.node(name)
        while spec.master is not None:
            spec = self.spec.node(spec.master)
        return spec.name

    def _delayed_path(self, name: str) -> bool:
        spec = self.spec.node(name)
        while spec.master is not None:
            if spec.options.sql_delay:
                return True
            spec = self.spec.node(spec.master)
        return False

    async def wait_replicating(self, name: str, within: float = 30.0) -> dict[str, Any]:
        """Wait until `name`'s IO and SQL threads both run; returns the SHOW SLAVE STATUS row."""
        async with asyncio.timeout(within):
            while True:
                rows = await self.sql(name, "SHOW SLAVE STATUS")
                if rows and rows[0]["Slave_IO_Running"] == "Yes" and rows[0]["Slave_SQL_Running"] == "Yes":
                    return rows[0]
                await asyncio.sleep(0.05)

    async def wait_gtid(self, name: str, position: str, within: float = 30.0) -> None:
        """Wait until `name` has applied `position` (MASTER_GTID_WAIT)."""
        rows = await self.sql(name, "SELECT MASTER_GTID_WAIT(%s, %s) AS r", (position, within))
        if rows[0]["r"] != 0:
            raise SandboxError(f"sandbox node {name} did not reach GTID {position} within {within:g}s")

    async def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and delete node data dirs and the state file."""
        await asyncio.gather(
            *(
                asyncio.to_thread(server.terminate, n.pid, n.datadir, self._procs.get(n.name))
                for n in self._nodes.values()
                if n.pid
            )
        )
        self._procs.clear()
        shutil.rmtree(self.base_dir / "nodes", ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        state_path(self.base_dir).unlink(missing_ok=True)

    def _save(self) -> None:
        save_state(
            self.base_dir,
            SandboxState(
                spec=self.spec,
                nodes=tuple(self._nodes[name] for name in self.names if name in self._nodes),
                created_at=utcnow(),
                slave_net_timeout=self.slave_net_timeout,
                socket_dir=self._socket_dir,
            ),
        )

    # --- breaking things (tests) ----------------------------------------------------------------
    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to `name`'s mariadbd (SIGKILL, SIGSTOP, SIGCONT, ...). SIGKILL waits for the exit."""
        node = self.node(name)
        if not self.is_running(name):
            raise SandboxError(f"sandbox node {name} is not running")
        server.signal_pid(node.pid, sig)
        if sig == signal.SIGKILL and not server.wait_gone(node.pid, node.datadir, 5.0, self._procs.get(name)):
            raise SandboxError(f"sandbox node {name} survived SIGKILL")

    async def restart(self, name: str) -> None:
        """Stop `name` if it runs (SIGTERM) and start it again on the same port and data dir."""
        node = self.node(name)
        await asyncio.to_thread(server.terminate, node.pid, node.datadir, self._procs.get(name))
        await self._boot(name, semi_sync=True)
        self._save()
