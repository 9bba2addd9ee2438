"""The fenced execute (libs/mysql/fenced.py) against a real mariadbd, through a TCP proxy that can cut a
connection at a chosen moment: a read is retried once on a dead connection, a write that may have run is
never repeated, a connection found dead (closed, or silent) is replaced before a write goes out, and a
lapsed fence refuses a statement before anything is sent.

The write used counts its executions: `SET GLOBAL max_connect_errors = @@global.max_connect_errors + 1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import pytest

from libs.bus import lease as leases
from libs.bus.connection import connect
from libs.bus.provision import LEADER, provision
from libs.bus.server import NatsServer
from libs.errors import LeadershipLost, ReplicationCommandError
from libs.models import InstanceKey
from libs.mysql import ConnectionPool
from libs.mysql.fenced import FencedSession
from libs.recovery.fence import LeaseFence, StaticFence
from libs.sandbox import Sandbox
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory

BUMP = "SET GLOBAL max_connect_errors = @@global.max_connect_errors + 1"
COM_QUERY = 0x03


@dataclass
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    cut: bool = False  # the client side was closed: server replies are dropped
    silent: bool = False  # nothing is forwarded either way, nothing is closed (a dead network path)


@dataclass
class CuttingProxy:
    """TCP proxy in front of one mariadbd. `plan` holds what to do with the next COM_QUERY packets:
    "after-send" forwards the statement, then closes the client's connection before the reply (the
    statement runs; the client cannot know); "before-send" closes it without forwarding."""

    target: InstanceKey
    plan: list[str] = field(default_factory=list)
    connections: int = 0
    forwarded: list[bytes] = field(default_factory=list)  # COM_QUERY payloads that reached the server
    links: list[_Link] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def start(self) -> InstanceKey:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return InstanceKey(host="127.0.0.1", port=self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for link in self.links:
            link.client.close()
            link.server.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def close_clients(self) -> None:
        """What a server restart does to every open connection: closed from the far side."""
        for link in self.links:
            link.cut = True
            link.client.close()

    def silence(self) -> None:
        """Every open connection goes silent (a firewall dropped it): no data, no FIN, no RST."""
        for link in self.links:
            link.silent = True

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self.connections += 1
        sreader, swriter = await asyncio.open_connection(self.target.host, self.target.port)
        link = _Link(cwriter, swriter)
        self.links.append(link)
        await asyncio.gather(self._upstream(link, creader), self._downstream(link, sreader))

    async def _upstream(self, link: _Link, creader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await creader.read(65536):
                if link.silent:
                    continue
                if len(data) > 4 and data[4] == COM_QUERY and self.plan:
                    action = self.plan.pop(0)
                    if action == "after-send":
                        self.forwarded.append(data[5:])
                        link.server.write(data)
                        await link.server.drain()
                    link.cut = True
                    link.client.close()
                    asyncio.get_running_loop().call_later(1.0, link.server.close)
                    return
                if len(data) > 4 and data[4] == COM_QUERY:
                    self.forwarded.append(data[5:])
                link.server.write(data)
                await link.server.drain()
        link.server.close()  # the client went away

    async def _downstream(self, link: _Link, sreader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await sreader.read(65536):
                if link.cut or link.silent:
                    continue
                link.client.write(data)
                await link.client.drain()
        link.client.close()  # the server went away


async def _bumps(sb: Sandbox) -> int:
    return int((await sb.sql("master", "SELECT @@global.max_connect_errors AS n"))[0]["n"])


async def _bumps_settle(sb: Sandbox, expected: int, within: float = 5.0) -> int:
    """The counter once it reached `expected` (a cut statement may finish a moment later), or as is."""
    deadline = time.monotonic() + within
    while await _bumps(sb) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # and nothing more arrives
    return await _bumps(sb)


@contextlib.asynccontextmanager
async def _proxied(sb: Sandbox, pool: ConnectionPool):  # type: ignore[no-untyped-def]
    proxy = CuttingProxy(sb.key("master"))
    key = await proxy.start()
    try:
        yield proxy, FencedSession(pool, key, sb.topology_creds, StaticFence(), timeout=2.0)
    finally:
        pool.close()
        await proxy.stop()


async def test_a_read_is_retried_once_on_a_fresh_connection(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(0))
    async with _proxied(sb, ConnectionPool(connect_timeout=1.0, read_timeout=2.0)) as (proxy, s):
        assert await s.scalar("SELECT 1 AS one") == 1  # the pooled connection is open
        proxy.plan = ["after-send"]
        assert await s.scalar("SELECT 2 AS two") == 2  # cut mid-statement: run again, fresh connection
        assert proxy.connections == 2

        proxy.plan = ["after-send", "after-send"]  # the fresh connection dies too: no third attempt
        with pytest.raises(ReplicationCommandError, match=r"\[2013\]"):
            await s.read("SELECT 3 AS three")
        assert proxy.connections == 3 and proxy.plan == []


async def test_a_write_that_may_have_run_is_never_repeated(sandbox_factory: SandboxFactory) -> None:
    sb = await sandbox_factory(master_replicas(0))
    async with _proxied(sb, ConnectionPool(connect_timeout=1.0, read_timeout=2.0)) as (proxy, s):
        await s.read("SELECT 1")
        before = await _bumps(sb)

        proxy.plan = ["after-send"]  # it reached the server and ran; the reply never came back
        with pytest.raises(ReplicationCommandError, match=r"\[2013\]") as info:
            await s.write(BUMP, what="bump")
        assert str(info.value).startswith(f"bump on {s.key} failed")
        assert await _bumps_settle(sb, before + 1) == before + 1  # ran once, not repeated
        assert proxy.connections == 1  # no second attempt was even connected

        proxy.plan = ["before-send"]  # lost before the server saw it: the client cannot tell
        with pytest.raises(ReplicationCommandError, match=r"\[2013\]"):
            await s.write(BUMP)
        assert await _bumps_settle(sb, before + 2, within=0.5) == before + 1
        assert proxy.connections == 2  # the cut connection was replaced by the next user only

        await s.write(BUMP)  # the next statement goes out on a fresh connection, once
        assert await _bumps_settle(sb, before + 2) == before + 2
        assert proxy.connections == 3


async def test_a_connection_closed_while_idle_is_replaced_before_the_write(
    sandbox_factory: SandboxFactory,
) -> None:
    """A server restart closes every idle connection: the pool sees it without a round trip, and the
    write goes out once, on a fresh connection, with no error."""
    sb = await sandbox_factory(master_replicas(0))
    async with _proxied(sb, ConnectionPool(connect_timeout=1.0, read_timeout=2.0)) as (proxy, s):
        await s.read("SELECT 1")
        before = await _bumps(sb)
        proxy.close_clients()
        await asyncio.sleep(0.2)  # the FIN reaches the client's event loop
        await s.write(BUMP)
        assert proxy.connections == 2
        assert await _bumps_settle(sb, before + 1) == before + 1


async def test_a_silent_idle_connection_is_pinged_and_replaced_before_the_write(
    sandbox_factory: SandboxFactory,
) -> None:
    """A connection a firewall dropped shows nothing locally: an action pool pings one idle for
    `verify_idle_s`; the ping times out, so the write goes out once, on a fresh connection."""
    sb = await sandbox_factory(master_replicas(0))
    pool = ConnectionPool(connect_timeout=1.0, read_timeout=0.5, verify_idle_s=0.2)
    async with _proxied(sb, pool) as (proxy, s):
        await s.read("SELECT 1")
        before = await _bumps(sb)
        proxy.silence()
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await s.write(BUMP)
        assert time.monotonic() - started < 2.0  # one ping timeout (0.5 s) + a connect
        assert proxy.connections == 2
        assert await _bumps_settle(sb, before + 1) == before + 1


async def test_an_expired_lease_refuses_the_statement_before_it_is_sent(
    sandbox_factory: SandboxFactory, nats_server: NatsServer
) -> None:
    sb = await sandbox_factory(master_replicas(0))
    bus = await connect(nats_server.url, "fenced-test")
    try:
        await provision(bus.js)
        lease = await leases.acquire(bus.js, LEADER, "recovery", "test", 3)
        assert lease is not None
        keeper = leases.LeaseKeeper(bus.js, lease)  # never renewed: its deadline passes
        fence = LeaseFence(keeper)
        async with _proxied(sb, ConnectionPool(connect_timeout=1.0, read_timeout=2.0)) as (proxy, s):
            live = FencedSession(s.pool, s.key, s.creds, fence, timeout=0.5)
            assert await live.scalar("SELECT 1 AS one") == 1  # while the lease holds
            sent = len(proxy.forwarded)
            before = await _bumps(sb)
            deadline = time.monotonic() + 10
            while keeper.held:
                assert time.monotonic() < deadline, "the lease deadline never passed"
                await asyncio.sleep(0.05)
            with pytest.raises(LeadershipLost):
                await live.write(BUMP)
            with pytest.raises(LeadershipLost):
                await live.read("SELECT 1")
            assert len(proxy.forwarded) == sent  # nothing was sent
            assert await _bumps(sb) == before
    finally:
        await bus.close()


async def test_a_statement_is_limited_by_the_server_and_the_client(sandbox_factory: SandboxFactory) -> None:
    """MariaDB aborts the statement at the limit (1969, `max_statement_time`) and the client would give
    up at the same time: either way it ends within the limit, not at the pool's read timeout."""
    sb = await sandbox_factory(master_replicas(0))
    pool = ConnectionPool(connect_timeout=1.0, read_timeout=30.0)
    try:
        s = FencedSession(pool, sb.key("master"), sb.topology_creds, StaticFence(), timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ReplicationCommandError, match=r"\[(1969|2013)\]"):
            await s.read("SELECT SLEEP(5)")
        assert time.monotonic() - started < 1.5
        assert await s.scalar("SELECT 1 AS one") == 1
    finally:
        pool.close()


async def test_a_sequence_holds_one_session_to_itself(sandbox_factory: SandboxFactory) -> None:
    """`write_sequence` (gtid-errant-inject-empty's `SET GTID_NEXT` … `COMMIT` on MySQL): the statements
    share one session, and a statement sent meanwhile by another task on the same instance waits until the
    sequence is over instead of coming in between (here it would change the session variable used)."""
    sb = await sandbox_factory(master_replicas(0))
    pool = ConnectionPool(connect_timeout=1.0, read_timeout=5.0)
    try:
        s = FencedSession(pool, sb.key("master"), sb.topology_creds, StaticFence(), timeout=3.0)
        before = await _bumps(sb)
        sequence = [
            ("SET @baton_step = %s", (1,)),
            ("DO SLEEP(0.5)", ()),
            ("SET GLOBAL max_connect_errors = @@global.max_connect_errors + @baton_step", ()),
        ]
        running = asyncio.create_task(s.write_sequence(sequence, what="sequence"))
        await asyncio.sleep(0.2)  # the sequence is in its DO SLEEP
        await s.write("SET @baton_step = 100")  # waits for the sequence's end
        await running
        assert await _bumps(sb) == before + 1
        assert await s.scalar("SELECT @baton_step AS v") == 100  # same pooled session, after it
    finally:
        pool.close()
