"""`BatonTelemetryExporter: "prometheus"` on real processes, scraped over HTTP and read with
prometheus_client's parser.

- `baton up --sandbox` (every service in one process): the API's `GET /metrics` before and after a
  real failover (SIGKILL of the sandbox master): probes counted, probe latency observed, the leader
  gauge at 1 with its epoch, the read-model lag per stream, then the detection latency, one failover
  duration with outcome `succeeded`, the KV publish lag of the data center and unreachable probes.
  Every series the Grafana dashboard queries is in that scrape.
- `python -m services.prober`, `services.recovery` and `services.analyzer` alone, on a real nats-server,
  each serving `/metrics` on its own BatonMetricsListen port; a busy port is a one-line error naming
  the key (exit 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from libs import processes
from libs.bus.server import NatsServer, free_port
from tests.consul_server import ConsulTestServer
from tests.integration.e2e.test_baton_up import REPO, run_baton_up, sandbox_master, wait_until
from tests.unit.telemetry.prom import Scrape, dashboard, dashboard_metric_names

CREDENTIALS = {
    "MySQLTopologyUser": "baton",
    "MySQLTopologyPassword": "topology-secret",
    "MySQLReplicationUser": "repl",
    "MySQLReplicationPassword": "replication-secret",
}


async def scrape(http: httpx.AsyncClient, path: str = "/metrics") -> Scrape:
    r = await http.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return Scrape(r.text)


async def test_baton_up_serves_metrics_that_move_with_a_failover(
    tmp_path: Path, consul_server: ConsulTestServer
) -> None:
    config = {
        "ConsulAddress": consul_server.address,
        "KVClusterMasterPrefix": "mysql/master",
        "BatonDataCenter": "east",  # the name of ConsulAddress's data center: the kv lag's `dc` label
        "BatonTelemetryExporter": "prometheus",
    }
    async with (
        run_baton_up(tmp_path, config) as (api, state),
        httpx.AsyncClient(base_url=api, timeout=5) as http,
    ):

        async def discovered() -> bool:
            try:
                r = await http.get("/api/clusters-info")
            except httpx.TransportError:
                return False
            return r.status_code == 200 and any(c["CountInstances"] == 4 for c in r.json())

        await wait_until("the sandbox discovered (4 instances)", discovered, timeout=90)

        async def settled() -> Scrape | None:
            s = await scrape(http)
            leading = s.find("baton_recovery_leader")
            ok = (
                s.total("baton_probes_total") >= 8
                and any(x.value == 1 for x in leading)
                and s.find("baton_readmodel_lag_seconds", stream="BATON_SNAPSHOTS")
            )
            return s if ok else None

        before = await wait_until("probes counted and a recovery leader", settled, timeout=30)
        assert before.types["baton_probe_latency_seconds"] == "histogram"
        assert before.types["baton_probes"] == "counter"  # the parser names the family without _total
        assert before.total("baton_probe_latency_seconds_count") >= 8
        leader = next(x for x in before.find("baton_recovery_leader") if x.value == 1)
        epoch = before.find("baton_recovery_epoch", node=leader.labels["node"])
        assert epoch and epoch[0].value >= 1, before.find("baton_recovery_epoch")
        assert 0 <= before.find("baton_readmodel_lag_seconds", stream="BATON_SNAPSHOTS")[0].value < 60
        # no master failed yet (a recovery the sandbox's start-up may cause closes under another analysis)
        dead_master = {"analysis": "DeadMaster", "outcome": "succeeded"}
        assert before.total("baton_failover_duration_seconds_count", **dead_master) == 0, before.find(
            "baton_failover_duration_seconds_count"
        )

        master, pid = sandbox_master(state)
        os.kill(pid, signal.SIGKILL)

        async def recovered() -> bool:
            r = await http.get("/api/audit-recovery")
            return r.status_code == 200 and any(rec["IsSuccessful"] for rec in r.json())

        await wait_until(f"a successful recovery of {master}", recovered, timeout=60)

        async def failover_seen() -> Scrape | None:
            s = await scrape(http)
            ok = (
                s.total("baton_failover_duration_seconds_count", **dead_master) == 1
                and s.total("baton_kv_publish_lag_seconds_count", result="published") >= 1
                and s.total("baton_probe_errors_total", reason="unreachable") >= 1
                and s.total("baton_recovery_leader") == 1  # (a lease lost under load is won back)
            )
            return s if ok else None

        after = await wait_until("the failover in the metrics", failover_seen, timeout=30)
        assert after.total("baton_failover_duration_seconds_count", analysis="DeadMaster") == 1
        duration = after.total("baton_failover_duration_seconds_sum", **dead_master)
        assert 0 < duration < 60, duration
        assert after.total("baton_detection_latency_seconds_count", analysis="DeadMaster") >= 1
        assert after.total("baton_probes_total") > before.total("baton_probes_total")
        published = after.find("baton_kv_publish_lag_seconds_count", result="published")
        assert {x.labels["dc"] for x in published} == {"east"}, published
        # one process, one recovery node: it still leads; its epoch only rises (on a busy machine a lease
        # renewal can miss the 3 s TTL and the node wins the lease again with a new epoch)
        assert after.find("baton_recovery_leader", node=leader.labels["node"])[0].value == 1
        assert after.find("baton_recovery_epoch", node=leader.labels["node"])[0].value >= epoch[0].value

        detection = after.total("baton_detection_latency_seconds_sum", analysis="DeadMaster")
        print(f"failover duration {duration:.2f} s, detection latency {detection:.2f} s (from /metrics)")
        print(
            "recoveries closed:",
            [(x.labels, x.value) for x in after.find("baton_failover_duration_seconds_count")],
        )
        missing = dashboard_metric_names(dashboard()) - after.names
        assert not missing, f"the dashboard queries series Baton does not export: {sorted(missing)}"


# ---- services run alone, each with its own port ---------------------------------------------------


def metrics_env(listen: str) -> dict[str, str]:
    """This environment without BATON_ keys, and BatonMetricsListen set to `listen`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    return env | {"BATON_BatonMetricsListen": listen}


@contextlib.contextmanager
def service(name: str, config: Path, nats: str, listen: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}", "--config", str(config), "--nats", nats],
            cwd=REPO,
            env=metrics_env(listen),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            processes.stop(proc, 30)
    assert proc.returncode == 0, log.read_text()[-3000:]


async def test_services_alone_serve_metrics_on_their_own_ports(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    dead = free_port()  # nothing listens there: every probe of it fails
    config = tmp_path / "baton.json"
    config.write_text(
        json.dumps(
            {
                **CREDENTIALS,
                "BatonTelemetryExporter": "prometheus",
                "DiscoverySeeds": [f"127.0.0.1:{dead}"],
                "InstancePollSeconds": 1,
            }
        )
    )
    prober_port, recovery_port, analyzer_port = free_port(), free_port(), free_port()
    with (
        service("prober", config, nats_server.url, f"127.0.0.1:{prober_port}", tmp_path / "prober.log"),
        service("recovery", config, nats_server.url, f"127.0.0.1:{recovery_port}", tmp_path / "rec.log"),
        service("analyzer", config, nats_server.url, f"127.0.0.1:{analyzer_port}", tmp_path / "an.log"),
    ):
        async with httpx.AsyncClient(timeout=5) as http:

            async def prober_metrics() -> Scrape | None:
                try:
                    s = await scrape(http, f"http://127.0.0.1:{prober_port}/metrics")
                except httpx.TransportError:
                    return None
                return s if s.total("baton_probe_errors_total", reason="unreachable") >= 2 else None

            probed = await wait_until("the prober's failed probes", prober_metrics, timeout=30)
            assert probed.total("baton_probes_total") >= 2
            assert probed.total("baton_probe_latency_seconds_count") >= 2
            assert not probed.find("baton_recovery_leader")  # one process, its own metrics only

            async def leader_metrics() -> Scrape | None:
                try:
                    s = await scrape(http, f"http://127.0.0.1:{recovery_port}/metrics")
                except httpx.TransportError:
                    return None
                return s if s.total("baton_recovery_leader") == 1 else None

            led = await wait_until("the recovery service leading", leader_metrics, timeout=30)
            assert led.total("baton_recovery_epoch") >= 1
            assert led.total("baton_probes_total") == 0

            async def analyzer_up() -> Scrape | None:
                try:
                    return await scrape(http, f"http://127.0.0.1:{analyzer_port}/metrics")
                except httpx.TransportError:
                    return None

            # it answers (200, the text format); with no detection yet it has nothing recorded
            analyzer = await wait_until("the analyzer's endpoint", analyzer_up, timeout=30)
            assert analyzer.total("baton_probes_total") == analyzer.total("baton_recovery_leader") == 0


async def test_a_busy_metrics_port_is_an_error_naming_the_key(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    config = tmp_path / "baton.json"
    config.write_text(json.dumps({**CREDENTIALS, "BatonTelemetryExporter": "prometheus"}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.recovery", "--config", str(config), "--nats", nats_server.url],
            cwd=REPO,
            env=metrics_env(f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"BatonMetricsListen '127.0.0.1:{port}'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
