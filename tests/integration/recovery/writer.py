"""A client that keeps writing through a master switch: what an application sees during a takeover.

It inserts ever-increasing ids into `baton_sandbox.counter` as a plain user (no SUPER / READ_ONLY ADMIN,
so read_only applies to it), autocommit, on whichever node accepts writes: on any error (read-only
1290, connection refused, ...) it moves to the next node and retries the same id. `acked` holds the
ids whose INSERT returned OK — each must exist on the new master afterwards; `max_gap_s` is the
longest time between two acknowledged inserts (the outage as the client saw it, discovery included).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncmy

from libs.models import InstanceKey
from libs.sandbox import SANDBOX_DB, Sandbox

USER, PASSWORD = "app", "app-secret"


async def prepare(sb: Sandbox, master: str) -> None:
    """The table and the unprivileged user, created on the master (they replicate)."""
    await sb.script(
        master,
        [
            f"CREATE TABLE IF NOT EXISTS {SANDBOX_DB}.counter (id INT PRIMARY KEY, at DATETIME(6))",
            f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'",
            f"GRANT SELECT, INSERT ON {SANDBOX_DB}.* TO '{USER}'@'127.0.0.1'",
        ],
    )


class Writer:
    def __init__(self, nodes: list[InstanceKey], first: int = 0) -> None:
        self.nodes = nodes
        self.next_id = first
        self.acked: list[int] = []
        self.errors = 0
        self.max_gap_s = 0.0
        self.stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Writer:
        self._task = asyncio.create_task(self._run(), name="writer")
        return self

    async def finish(self) -> None:
        self.stop.set()
        if self._task is not None:
            await self._task

    async def wait_acked(self, n: int, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        target = len(self.acked) + n
        while len(self.acked) < target:
            assert time.monotonic() < deadline, (
                f"writer stuck at {len(self.acked)} acks ({self.errors} errors)"
            )
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        index = 0
        conn: Any = None
        last_ack = time.monotonic()
        while not self.stop.is_set():
            node = self.nodes[index % len(self.nodes)]
            try:
                if conn is None:
                    conn = await asyncmy.connect(
                        host=node.host,
                        port=node.port,
                        user=USER,
                        password=PASSWORD,
                        autocommit=True,
                        connect_timeout=1,
                    )
                async with conn.cursor() as cur:
                    await cur.execute(
                        f"INSERT INTO {SANDBOX_DB}.counter (id, at) VALUES (%s, NOW(6))", (self.next_id,)
                    )
            except Exception:  # read-only, refused, lost: try the next node
                self.errors += 1
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                index += 1
                await asyncio.sleep(0.001)
                continue
            now = time.monotonic()
            self.max_gap_s = max(self.max_gap_s, now - last_ack)
            last_ack = now
            self.acked.append(self.next_id)
            self.next_id += 1
        if conn is not None:
            conn.close()
