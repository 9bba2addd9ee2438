"""Schema-based fuzzing (schemathesis) of every operation in `/openapi.json`: no 5xx, and nothing
unexpected in the API's log. Bounded: the examples and coverage phases (boundary values of every
parameter), then 5 seeded random examples per operation.

Excluded: `discover`/`async-discover` (they would register and probe random host names — network
traffic off loopback) and `/api/events` (a stream that never ends). Recovery commands are answered by
a stand-in leader that refuses everything, so their request/reply path is fuzzed too.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from libs.bus.connection import connect
from libs.bus.server import NatsServer
from libs.models import InstanceKey, ReplicationStatus, utcnow
from libs.models.instance import InstanceSnapshot, IOThreadState
from libs.models.operator import CommandReply, CommandStatus
from tests.integration.api.conftest import publish_snapshots, start_api

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
pytestmark = pytest.mark.skipif(
    not SCHEMATHESIS.exists() and not shutil.which("schemathesis"),
    reason="schemathesis is not installed (pip install schemathesis)",
)


def _snapshots() -> list[InstanceSnapshot]:
    master = InstanceKey(host="fuzz-master.example", port=3306)
    replica = InstanceKey(host="fuzz-replica.example", port=3306)
    repl = ReplicationStatus(
        master=master, io_state=IOThreadState.YES, sql_running=True, seconds_behind_master=0
    )
    return [
        InstanceSnapshot(
            key=master,
            probed_at=utcnow(),
            reachable=True,
            version="10.11.6-MariaDB",
            log_bin=True,
            cluster_alias="fuzz",
        ),
        InstanceSnapshot(
            key=replica,
            probed_at=utcnow(),
            reachable=True,
            version="10.11.6-MariaDB",
            read_only=True,
            replication=repl,
        ),
    ]


@pytest.fixture
def refusing_leader(nats_server: NatsServer) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        bus = await connect(nats_server.url, "fuzz-leader")

        async def answer(msg: Msg) -> None:
            reply = CommandReply(status=CommandStatus.REFUSED, message="refused by the fuzz stand-in")
            await msg.respond(reply.model_dump_json().encode())

        await bus.nc.subscribe("baton.cmd.recovery.>", cb=answer)
        await bus.nc.flush()
        ready.set()
        await stop.wait()
        await bus.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def test_fuzz_finds_no_server_errors(nats_server: NatsServer, tmp_path: Path, refusing_leader: None) -> None:
    api = start_api(tmp_path, nats_server.url, f"sqlite+aiosqlite:///{tmp_path}/rm.db", "sqlite")
    try:
        asyncio.run(publish_snapshots(nats_server.url, _snapshots()))
        api.wait_for("clusters", lambda r: len(r.json()) == 1)
        exe = str(SCHEMATHESIS) if SCHEMATHESIS.exists() else "schemathesis"
        argv = [
            exe,
            "run",
            f"{api.base}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "5",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
            "--exclude-path-regex",
            # discover: probes MySQL; events: an endless stream; raft-health / raft-leader answer 503 by
            # design while no recovery leader holds the lease (the stand-in below answers commands only)
            r"(discover|^/api/events$|^/api/raft-(health|leader)$)",
            "--request-timeout",
            "10",
            "--workers",
            "1",
            "--suppress-health-check",
            "all",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=170, check=False)
        start = result.stdout.find("FAILURES")
        report = result.stdout[max(start, 0) :][:8000] + result.stderr[-2000:]
        assert result.returncode == 0, report
        assert "unexpected error" not in api.logs(), api.logs()[-4000:]
    finally:
        api.stop()
