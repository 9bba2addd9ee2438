"""Serve a simulated fleet: one listening socket per instance, all in one asyncio process.

`FleetSimulator(fleet)` binds every instance of the model at its own host:port (127.0.0.1 with many ports,
or one 127.0.x.y address each) and answers the MySQL protocol from the model. Its Python control API
(`kill`, `hang`, `revive`, `lag`, `break_io`, `break_sql`, `repair`, `set_write_rate`) changes the model
and the sockets together:
- **kill**: the listener closes (connections refused: errno 2003) and every open connection is reset;
- **hang**: like SIGSTOP, connections are still accepted (the kernel's backlog would) but nothing is
  answered, not even the greeting, until the instance is revived;
- **revive**: the instance listens and answers again (a killed one restarts: Uptime from 0).

`serve_control(port)` exposes the same API as JSON lines over TCP for a bench in another process
(`ControlClient`): one request object per line (`{"op": "kill", "instance": "127.0.0.1:23000"}`), one
answer per line (`{"ok": true, ...}` or `{"ok": false, "error": "..."}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from bench.fleetsim import protocol as p
from bench.fleetsim.model import DEAD, HUNG, UP, Addr, Fleet, Node, addr_text, gtid_text, parse_addr
from bench.fleetsim.sql import Answer, Deferred, Session, describe, split_statements

_MAX_BUFFER = 1 << 20


class _Conn(asyncio.Protocol):
    """One client connection to one simulated instance."""

    def __init__(self, sim: FleetSimulator, node: Node) -> None:
        self.sim = sim
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.authed = False
        self.greeted = False
        self.busy = False
        self.outbox: list[bytes] = []
        self.scramble = bytes(b % 94 + 33 for b in os.urandom(20))
        self.session = Session(sim.fleet, node, sim.clock)

    # --- transport callbacks --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.node.state == DEAD:
            transport.abort()
            return
        self.sim._conns.setdefault(self.node.addr, set()).add(self)
        if self.node.state == UP:
            self._greet()

    def connection_lost(self, exc: Exception | None) -> None:
        conns = self.sim._conns.get(self.node.addr)
        if conns is not None:
            conns.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > _MAX_BUFFER:
            self.close()
            return
        self.pump()

    # --- driving ---------------------------------------------------------------------------------
    def _greet(self) -> None:
        self.greeted = True
        self.sim.conn_seq += 1
        self._send([p.handshake(self.sim.conn_seq, self.scramble, "5.5.5-" + self.sim.version)], 0)

    def resume(self) -> None:
        """The instance answers again (revived from a hang): greet, flush, handle what waited."""
        if self.transport is None:
            return
        if not self.greeted:
            self._greet()
        if self.outbox:
            self.transport.write(b"".join(self.outbox))
            self.outbox.clear()
        self.pump()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _send(self, payloads: list[bytes], first_seq: int) -> None:
        data = p.frame(payloads, first_seq)
        if self.transport is None:
            return
        if self.node.state == HUNG:
            self.outbox.append(data)
        else:
            self.transport.write(data)

    def pump(self) -> None:
        while not self.busy and self.node.state == UP and self.greeted and len(self.buf) >= 4:
            length = int.from_bytes(self.buf[:3], "little")
            if len(self.buf) < 4 + length:
                return
            seq = self.buf[3]
            payload = bytes(self.buf[4 : 4 + length])
            del self.buf[: 4 + length]
            self._handle(payload, seq)

    def _handle(self, payload: bytes, seq: int) -> None:
        if not self.authed:
            self._auth(payload, seq)
            return
        if not payload:
            return
        cmd = payload[0]
        if cmd == p.COM_QUERY:
            self._query(payload[1:].decode("utf-8", "replace"))
        elif cmd in (p.COM_PING, p.COM_INIT_DB):
            self._send([p.ok(p.SERVER_STATUS_AUTOCOMMIT)], 1)
        elif cmd == p.COM_QUIT:
            self.close()
        else:
            self._send([p.err(1047, "Unknown command", "08S01")], 1)

    def _auth(self, payload: bytes, seq: int) -> None:
        try:
            resp = p.parse_handshake_response(payload)
        except (ValueError, IndexError, struct.error):
            self._send([p.err(1043, "Bad handshake", "08S01")], seq + 1)
            self.close()
            return
        creds = self.sim.credentials
        if creds is not None and (
            resp.user != creds[0] or not p.native_password_ok(creds[1], self.scramble, resp.auth)
        ):
            using = "YES" if resp.auth else "NO"
            msg = f"Access denied for user '{resp.user}'@'{self._peer_host()}' (using password: {using})"
            self._send([p.err(1045, msg, "28000")], seq + 1)
            self.close()
            return
        self.authed = True
        self._send([p.ok(p.SERVER_STATUS_AUTOCOMMIT)], seq + 1)

    def _peer_host(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if peer else "localhost"

    def _query(self, sql: str) -> None:
        self.sim.queries += 1
        answers: list[Answer | p.SQLError] = []
        statements = split_statements(sql)
        if not statements:
            self._send([p.err(1065, "Query was empty", "42000")], 1)
            return
        for i, stmt in enumerate(statements):
            try:
                out = self.session.execute(stmt)
            except p.SQLError as exc:
                self.sim.record_error(exc, stmt)
                answers.append(exc)
                break
            except Exception as exc:  # a simulator bug answers 1105, it does not kill the connection
                err = p.SQLError(1105, f"fleetsim: {type(exc).__name__}: {exc}")
                self.sim.record_error(err, stmt)
                answers.append(err)
                break
            if isinstance(out, Deferred):
                self.busy = True
                task = asyncio.get_running_loop().create_task(self._finish(answers, out, statements[i + 1 :]))
                self.sim._tasks.add(task)
                task.add_done_callback(self.sim._tasks.discard)
                return
            answers.append(out)
        self._send(p.answer_payloads(answers), 1)

    async def _finish(self, answers: list[Answer | p.SQLError], waiting: Deferred, rest: list[str]) -> None:
        try:
            try:
                answers.append(await waiting.run())
            except p.SQLError as exc:
                answers.append(exc)
                rest = []
            for stmt in rest:
                try:
                    out = self.session.execute(stmt)
                    answers.append(await out.run() if isinstance(out, Deferred) else out)
                except p.SQLError as exc:
                    self.sim.record_error(exc, stmt)
                    answers.append(exc)
                    break
            self._send(p.answer_payloads(answers), 1)
        finally:
            self.busy = False
        self.pump()


class FleetSimulator:
    """Serves `fleet`; see the module docstring. Use `async with FleetSimulator(fleet) as sim:`."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        credentials: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        version: str = "10.11.19-MariaDB-log",
    ) -> None:
        """`credentials`: (user, password) every connection must present (mysql_native_password);
        None accepts any user and password."""
        self.fleet = fleet
        self.credentials = credentials
        self.clock = clock
        self.version = version
        self.conn_seq = 0
        self.queries = 0
        self._servers: dict[Addr, asyncio.Server] = {}
        self._conns: dict[Addr, set[_Conn]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._control: asyncio.Server | None = None
        self.errors: Counter[int] = Counter()  # errno -> how many statements were answered with it
        self.unknown: deque[str] = deque(maxlen=20)  # the last statements it could not answer (1064, 1105)

    def record_error(self, exc: p.SQLError, stmt: str) -> None:
        self.errors[exc.errno] += 1
        if exc.errno in (1064, 1105):
            self.unknown.append(stmt[:200])

    async def __aenter__(self) -> FleetSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, *, batch: int = 256) -> None:
        nodes = [n for n in self.fleet if n.state != DEAD]
        for i in range(0, len(nodes), batch):
            await asyncio.gather(*(self._listen(n) for n in nodes[i : i + batch]))

    async def _listen(self, node: Node) -> None:
        if node.addr in self._servers:
            return
        loop = asyncio.get_running_loop()
        self._servers[node.addr] = await loop.create_server(
            lambda: _Conn(self, node), node.addr[0], node.addr[1], reuse_address=True, backlog=128
        )

    async def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        for conns in list(self._conns.values()):
            for c in list(conns):
                c.close()
        self._conns.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- control API --------------------------------------------------------------------------------
    def node(self, instance: str | Addr) -> Node:
        return self.fleet.get(instance)

    def kill(self, instance: str | Addr) -> None:
        """The instance dies: connections refused, open ones reset; its replicas see it at once."""
        node = self.node(instance)
        self.fleet.set_state(node, DEAD, self.clock())
        server = self._servers.pop(node.addr, None)
        if server is not None:
            server.close()
        for c in list(self._conns.pop(node.addr, set())):
            c.close()

    def hang(self, instance: str | Addr) -> None:
        """The instance stops answering (SIGSTOP): accepted, never answered; replicas hear nothing."""
        node = self.node(instance)
        if node.state == DEAD:
            raise ValueError(f"{node.key} is dead: revive it before hanging it")
        self.fleet.set_state(node, HUNG, self.clock())

    async def revive(self, instance: str | Addr) -> None:
        """The instance answers again (a killed one restarts, a hung one resumes)."""
        node = self.node(instance)
        self.fleet.set_state(node, UP, self.clock())
        await self._listen(node)
        for c in list(self._conns.get(node.addr, ())):
            c.resume()

    def lag(self, instance: str | Addr, seconds: float) -> None:
        """The replica applies `seconds` behind its master (Seconds_Behind_Master, GTID behind)."""
        node = self.node(instance)
        if seconds < 0:
            raise ValueError("lag must be >= 0")
        self.fleet.settle_clusters(self.clock(), node)
        node.lag_s = float(seconds)

    def break_io(self, instance: str | Addr, errno: int = 1236, error: str = "") -> None:
        """The IO thread stops with an error (default: 1236, the master's binlog is gone)."""
        node = self._replica(instance)
        self.fleet.settle_clusters(self.clock(), node)
        node.io_on = False
        node.io_errno = int(errno)
        node.io_error = error or (
            "Got fatal error 1236 from master when reading data from binary log: 'Could not find GTID state "
            "requested by slave in any binlog files. Probably the slave state is too old and required binlog "
            "files have been purged.'"
        )
        self.fleet.settle_clusters(self.clock(), node)

    def break_sql(self, instance: str | Addr, errno: int = 1062, error: str = "") -> None:
        """The SQL thread stops with an error (default: 1062, a duplicate key)."""
        node = self._replica(instance)
        self.fleet.settle_clusters(self.clock(), node)
        node.sql_on = False
        node.sql_errno = int(errno)
        pos = gtid_text(node.pos) or "0-0-0"
        node.sql_error = error or (
            f"Error 'Duplicate entry '1' for key 'PRIMARY'' on query. Default database: 'app'. Query: "
            f"'INSERT INTO t VALUES (1)', Gtid {pos}, Internal MariaDB error code: 1062"
        )
        self.fleet.settle_clusters(self.clock(), node)

    def repair(self, instance: str | Addr) -> None:
        """START SLAVE: both threads run again, errors cleared."""
        node = self._replica(instance)
        self.fleet.settle_clusters(self.clock(), node)
        node.io_on = node.sql_on = True
        node.io_errno, node.io_error, node.sql_errno, node.sql_error = 0, "", 0, ""
        self.fleet.settle_clusters(self.clock(), node)

    def set_write_rate(self, instance: str | Addr, rate: float) -> None:
        node = self.node(instance)
        self.fleet.settle_clusters(self.clock(), node)
        node.write_rate = float(rate)

    def _replica(self, instance: str | Addr) -> Node:
        node = self.node(instance)
        if node.master is None:
            raise ValueError(f"{node.key} is not a replica")
        return node

    def show(self, instance: str | Addr) -> dict[str, Any]:
        return describe(self.node(instance), self.fleet, self.clock())

    def topology(self) -> dict[str, Any]:
        clusters: dict[str, dict[str, Any]] = {}
        for n in self.fleet:
            c = clusters.setdefault(n.cluster, {"masters": [], "replicas": []})
            if n.master is None:
                c["masters"].append(n.key)
            else:
                c["replicas"].append({"instance": n.key, "master": addr_text(n.master)})
        return {"instances": len(self.fleet), "clusters": clusters}

    # --- JSON-lines control channel ----------------------------------------------------------------
    async def serve_control(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for control requests; returns the port."""
        self._control = await asyncio.start_server(self._control_client, host, port)
        return int(self._control.sockets[0].getsockname()[1])

    async def _control_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    answer = await self.control(json.loads(line))
                except Exception as exc:
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        """One control request (the JSON channel's and tests' entry point)."""
        op = str(req.get("op", ""))
        inst = req.get("instance")
        if op == "ping":
            return {"ok": True}
        if op == "topology":
            return {"ok": True, **self.topology()}
        if op == "stats":
            return {
                "ok": True,
                "queries": self.queries,
                "connections": sum(len(c) for c in self._conns.values()),
                "errors": {str(k): v for k, v in sorted(self.errors.items())},
                "unknown_statements": list(self.unknown),
            }
        if not isinstance(inst, str):
            raise ValueError(f'op {op!r} needs "instance": "host:port"')
        parse_addr(inst)
        if op == "kill":
            self.kill(inst)
        elif op == "hang":
            self.hang(inst)
        elif op == "revive":
            await self.revive(inst)
        elif op == "lag":
            self.lag(inst, float(req.get("seconds", 0)))
        elif op == "break_io":
            self.break_io(inst, int(req.get("errno", 1236)), str(req.get("error", "")))
        elif op == "break_sql":
            self.break_sql(inst, int(req.get("errno", 1062)), str(req.get("error", "")))
        elif op == "repair":
            self.repair(inst)
        elif op == "write_rate":
            self.set_write_rate(inst, float(req.get("rate", 0)))
        elif op != "show":
            raise ValueError(f"unknown op {op!r}")
        return {"ok": True, **self.show(inst)}


CONTROL_LINE_LIMIT = 64 * 2**20


class ControlClient:
    """Drive a simulator in another process over its JSON-lines control channel."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        async with self._lock:
            if self._writer is None:
                # a whole-fleet answer ("topology" of 10,000 instances) is one line of megabytes
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, limit=CONTROL_LINE_LIMIT
                )
            assert self._reader is not None
            self._writer.write(json.dumps({"op": op, **kwargs}).encode() + b"\n")
            await self._writer.drain()
            line = await self._reader.readline()
        if not line:
            raise ConnectionError("fleetsim control channel closed")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"fleetsim {op}: {answer.get('error')}")
        return answer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None


def free_base_port(count: int, *, addressing: str = "ports", low: int = 10000, high: int = 32700) -> int:
    """A base port under which `count` instances can bind now (checked by binding each one once):
    "ports": base..base+count-1 on 127.0.0.1; "addrs": the same port on `count` loopback addresses.
    The default range stays below Linux's ephemeral ports (32768+), which client sockets take at any
    moment. Racy like any free-port search; good enough for tests and benches."""
    import random
    import socket

    from bench.fleetsim.model import loopback_addr

    rng = random.Random()
    for _ in range(50):
        span = count if addressing == "ports" else 1
        base = rng.randrange(low, high - span)
        addrs = (
            [("127.0.0.1", base + i) for i in range(count)]
            if addressing == "ports"
            else [loopback_addr(i, base) for i in range(count)]
        )
        socks: list[socket.socket] = []
        try:
            for a in addrs:
                s = socket.socket()
                socks.append(s)
                s.bind(a)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no free port range for {count} instances")
