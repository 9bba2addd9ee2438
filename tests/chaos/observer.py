"""The chaos runs' eyes: samples every MySQL server (and each DC's Consul) in rounds, as JSON lines.

    python -m tests.chaos.observer --out rounds.jsonl --interval 0.1 \\
        --server 10.213.0.11:3306 --server 10.213.0.12:3306 ... \\
        [--consul dc1=http://10.213.0.11:8500 ...] [--key mysql/master/ci]

Runs inside the observer namespace (never the root one). It is deliberately independent of the system
under test: its own asyncmy connections (one per server, re-opened after any failure), no Baton code
on the sampling path. Each round asks every server at once for `@@read_only`, `@@gtid_current_pos` and
`SHOW SLAVE STATUS`, bounded by `--timeout` (a hung server answers nothing: unreachable in that round,
its connection closed), and reads each Consul's key with the same bound. A round is one line:
`{"at": <monotonic s>, "servers": {"h:p": {...}}, "consul": {"dc1": "h:p" | "" | null}}` (null: that
Consul did not answer; "": no key). CLOCK_MONOTONIC is machine-wide, so the test compares `at` with its
own `time.monotonic()`. SIGTERM/SIGINT end it after the current round; every line is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncmy  # type: ignore[import-untyped]
import httpx
from asyncmy.cursors import DictCursor  # type: ignore[import-untyped]

from tests.chaos.invariants import Round, ServerSample


class Sampler:
    def __init__(self, server: str, user: str, password: str, timeout: float) -> None:
        self.server = server
        self.host, port = server.rsplit(":", 1)
        self.port = int(port)
        self.user, self.password, self.timeout = user, password, timeout
        self.conn: Any = None

    async def _sample(self) -> dict[str, Any]:
        if self.conn is None:
            self.conn = await asyncmy.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                connect_timeout=self.timeout,
                autocommit=True,
            )
        async with self.conn.cursor(DictCursor) as cur:
            await cur.execute("SELECT @@global.read_only AS ro, @@global.gtid_current_pos AS pos")
            row = (await cur.fetchall())[0]
            await cur.execute("SHOW SLAVE STATUS")
            status = await cur.fetchall()
        out: dict[str, Any] = {"reachable": True, "read_only": bool(int(row["ro"])), "gtid_pos": row["pos"]}
        if status:
            s = status[0]
            out |= {
                "master": f"{s['Master_Host']}:{s['Master_Port']}",
                "io_running": s["Slave_IO_Running"] == "Yes",
                "sql_running": s["Slave_SQL_Running"] == "Yes",
            }
        return out

    async def sample(self) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._sample(), self.timeout)
        except (Exception, TimeoutError):
            self.close()
            return {"reachable": False}

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: S110 - a broken connection may fail to close
                pass
            self.conn = None


async def consul_value(client: httpx.AsyncClient, url: str, key: str) -> str | None:
    try:
        resp = await client.get(f"{url}/v1/kv/{key}", params={"raw": ""})
    except httpx.HTTPError:
        return None
    if resp.status_code == 404:
        return ""
    return resp.text if resp.status_code == 200 else None


async def observe(args: argparse.Namespace, stop: asyncio.Event) -> None:
    samplers = [Sampler(s, args.user, args.password, args.timeout) for s in args.server]
    consuls = dict(c.split("=", 1) for c in args.consul)
    async with httpx.AsyncClient(timeout=args.timeout) as client:
        with open(args.out, "a", encoding="utf-8") as out:
            while not stop.is_set():
                at = time.monotonic()
                servers, values = await asyncio.gather(
                    asyncio.gather(*(s.sample() for s in samplers)),
                    asyncio.gather(*(consul_value(client, url, args.key) for url in consuls.values())),
                )
                line = {
                    "at": at,
                    "servers": {s.server: v for s, v in zip(samplers, servers, strict=True)},
                    "consul": dict(zip(consuls, values, strict=True)),
                }
                out.write(json.dumps(line) + "\n")
                out.flush()
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, at + args.interval - time.monotonic()))
                except TimeoutError:
                    pass
    for s in samplers:
        s.close()


def load_rounds(path: Path) -> list[Round]:
    rounds: list[Round] = []
    if not path.exists():
        return rounds
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        servers = {name: ServerSample(server=name, **fields) for name, fields in doc["servers"].items()}
        rounds.append(Round(at=doc["at"], servers=servers, consul=doc.get("consul", {})))
    return rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--server", action="append", default=[], help="host:port (repeat)")
    parser.add_argument("--consul", action="append", default=[], help="dc=http://host:port (repeat)")
    parser.add_argument("--key", default="mysql/master/ci")
    parser.add_argument("--user", default="baton")
    parser.add_argument("--password", default="")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await observe(args, stop)

    asyncio.run(run())
    sys.exit(0)


if __name__ == "__main__":
    main()
