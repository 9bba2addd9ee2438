"""The simulator as a process (`python -m bench.fleetsim`), driven over its JSON-lines control channel by
another process, and stopped by SIGTERM with every socket closed."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from pydantic import SecretStr

from bench.fleetsim import ControlClient
from bench.fleetsim.server import free_base_port
from libs.models import InstanceKey, IOThreadState
from libs.mysql import ConnectionPool, Credentials, ProbeSettings, probe

ROOT = Path(__file__).resolve().parents[3]
CREDS = Credentials(user="ctl", password=SecretStr("ctl-pw"))
FAST = ProbeSettings(connect_timeout=2.0, read_timeout=2.0)


async def test_a_bench_in_another_process_kills_and_revives_then_sigterm_stops_it() -> None:
    base = free_base_port(12)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.fleetsim",
        "--instances",
        "12",
        "--base-port",
        str(base),
        "--user",
        "ctl",
        "--password",
        "ctl-pw",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    client: ControlClient | None = None
    pool = ConnectionPool(connect_timeout=2.0, read_timeout=2.0)
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert ready["ready"] and len(ready["instances"]) == 12
        client = ControlClient("127.0.0.1", ready["control_port"])
        topo = await client.call("topology")
        master = ready["masters"][0]
        replica = next(r["instance"] for r in topo["clusters"]["c1"]["replicas"] if r["master"] == master)
        assert (await probe(InstanceKey.parse(master), CREDS, FAST, pool=pool)).reachable
        shown = await client.call("kill", instance=master)
        assert shown["state"] == "dead"
        dead = await probe(InstanceKey.parse(master), CREDS, FAST, pool=pool)
        assert not dead.reachable and dead.error_code == 2003
        rep = (await probe(InstanceKey.parse(replica), CREDS, FAST, pool=pool)).replication
        assert rep is not None and rep.io_state is IOThreadState.CONNECTING
        await client.call("revive", instance=master)
        assert (await probe(InstanceKey.parse(master), CREDS, FAST, pool=pool)).reachable
        lagged = await client.call("lag", instance=replica, seconds=12)
        assert lagged["seconds_behind_master"] == 12
        bad = ControlClient("127.0.0.1", ready["control_port"])
        try:
            await bad.call("explode", instance=master)
        except RuntimeError as exc:
            assert "unknown op" in str(exc)
        else:
            raise AssertionError("an unknown op must be refused")
        finally:
            await bad.close()
        await client.close()
        client = None
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 128 + signal.SIGTERM
        gone = await probe(InstanceKey.parse(master), CREDS, FAST, pool=ConnectionPool())
        assert not gone.reachable and gone.error_code == 2003
    finally:
        pool.close()
        if client is not None:
            await client.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
