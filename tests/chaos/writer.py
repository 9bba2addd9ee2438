"""The chaos runs' application: a writer that keeps inserting through the master Consul names, and a
ledger of every id whose COMMIT returned OK.

    python -m tests.chaos.writer --ledger ledger.txt --consul http://10.213.0.11:8500 ... \\
        --user chaos_app --password ... [--key mysql/master/ci] [--commit-timeout 5]

Runs inside the observer namespace, like an application in a fourth place. Before each connection it
resolves the master by reading `--key` from every DC's Consul (bounded; the value most of the answering
Consuls give, the first on a tie) and connects to it as an unprivileged user (no SUPER / READ_ONLY
ADMIN, so `read_only` applies to it). Each id is one transaction: INSERT, then COMMIT; the id is written
to the ledger (a line, flushed) only once the COMMIT returned OK — with semi-sync on the master that
means a replica has received it. Any error (read-only 1290, refused, lost connection, a COMMIT not
answered within `--commit-timeout`) closes the connection and the writer resolves again; the failed id
is never retried (its fate is unknown: it may or may not exist, only acknowledged ids must). Ids grow
strictly. SIGTERM/SIGINT end it after the current attempt. At the end it prints
`{"acked": n, "errors": n}` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import asyncmy  # type: ignore[import-untyped]
import httpx

from tests.chaos.observer import consul_value

TABLE = "baton_sandbox.chaos_ledger"
USER = "chaos_app"


def prepare_statements(password: str) -> list[str | tuple[str, tuple[str, ...]]]:
    """Run as root on the master before the writer starts (they replicate): the table and the user."""
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, at DATETIME(6))",
        (f"CREATE USER IF NOT EXISTS '{USER}'@'%%' IDENTIFIED BY %s", (password,)),
        f"GRANT SELECT, INSERT ON baton_sandbox.* TO '{USER}'@'%'",
    ]


def read_ledger(path: Path) -> frozenset[int]:
    """The acknowledged ids (a torn last line, from a writer killed mid-write, is not an id)."""
    if not path.exists():
        return frozenset()
    return frozenset(int(line) for line in path.read_text().splitlines() if line.strip().isdigit())


def master_of(values: list[str | None]) -> str | None:
    named = [v for v in values if v]
    return Counter(named).most_common(1)[0][0] if named else None


async def write(args: argparse.Namespace, stop: asyncio.Event) -> dict[str, int]:
    next_id, acked, errors = 1, 0, 0
    conn: Any = None
    async with httpx.AsyncClient(timeout=0.5) as client:
        with open(args.ledger, "a", encoding="utf-8") as ledger:
            while not stop.is_set():
                try:
                    if conn is None:
                        values = await asyncio.gather(
                            *(consul_value(client, u, args.key) for u in args.consul)
                        )
                        master = master_of(list(values))
                        if master is None:
                            raise ConnectionError("no Consul names a master")
                        host, port = master.rsplit(":", 1)
                        conn = await asyncio.wait_for(
                            asyncmy.connect(
                                host=host,
                                port=int(port),
                                user=args.user,
                                password=args.password,
                                autocommit=False,
                                connect_timeout=1,
                            ),
                            2,
                        )
                    this, next_id = next_id, next_id + 1
                    async with conn.cursor() as cur:
                        await asyncio.wait_for(
                            cur.execute(f"INSERT INTO {TABLE} (id, at) VALUES (%s, NOW(6))", (this,)), 2
                        )
                    await asyncio.wait_for(conn.commit(), args.commit_timeout)
                except (Exception, TimeoutError):
                    errors += 1
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    conn = None
                    await asyncio.sleep(0.05)
                    continue
                ledger.write(f"{this}\n")
                ledger.flush()
                acked += 1
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
    return {"acked": acked, "errors": errors}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--consul", action="append", default=[], help="http://host:port (repeat)")
    parser.add_argument("--key", default="mysql/master/ci")
    parser.add_argument("--user", default=USER)
    parser.add_argument("--password", default="")
    parser.add_argument("--commit-timeout", type=float, default=5.0)
    args = parser.parse_args(argv)

    async def run() -> dict[str, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await write(args, stop)

    print(json.dumps(asyncio.run(run())), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
