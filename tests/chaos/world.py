"""Baton across three data centers on one machine: the world every chaos scenario runs in.

Per DC namespace (tests/chaos/netlab.py), on the DC's address:
- one nats-server, the three forming one JetStream cluster (streams R3, one copy per DC) — client port
  4222, routes 6222, monitoring 8222 (namespaces have ports of their own, so these never clash with a
  NATS on this machine);
- one test Consul (tests/consul_server, port 8500), its own datacenter;
- Baton's prober, analyzer, recovery and kvpublisher (`--dc` its own Consul) as separate processes, each
  with the DC's NATS first in its URL list; the API runs in dc2;
- MariaDB servers placed by `WorldSpec.mysql` (default: master + replica in dc1, a replica in dc2 and in
  dc3), replicating across the bridge; their data center comes from `DetectDataCenterQuery`.
The observer namespace runs the observer (tests/chaos/observer.py) and test clients.

`World.start()` returns once Consul in every DC names the master (the recovery leader seeds it at
start: issue 12), which proves NATS, the services and the KV path are all up. Everything is stopped by
`stop()` (and whatever is left by the lab's close): services, NATS, Consul by PID, MariaDB by the
sandbox.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from libs.bus.server import ClusterConfig, NatsServer, find_nats_server
from libs.sandbox import Sandbox
from libs.sandbox.spec import TopologySpec, master_replicas
from tests.chaos.netlab import OBSERVER, NetLab

ROOT = Path(__file__).resolve().parents[2]
NATS_PORT, ROUTE_PORT, MONITOR_PORT, CONSUL_PORT, API_PORT = 4222, 6222, 8222, 8500, 3000
SERVICES = ("prober", "analyzer", "recovery", "kvpublisher")
CLUSTER_ALIAS = "ci"


@dataclass(frozen=True)
class WorldSpec:
    dcs: tuple[str, ...] = ("dc1", "dc2", "dc3")
    mysql: Mapping[str, str] = field(
        default_factory=lambda: {"master": "dc1", "replica1": "dc1", "replica2": "dc2", "replica3": "dc3"}
    )
    api_dc: str = "dc2"
    poll_s: int = 1
    slave_net_timeout: int = 4
    settings: Mapping[str, object] = field(default_factory=dict)  # extra Baton keys for every service
    topology: TopologySpec | None = None  # default: the master and a replica per other `mysql` name
    nats_route_addresses: bool = False  # NATS cluster routes on a second address per DC (cut alone)
    log_levels: Mapping[str, str] = field(default_factory=dict)  # service → level (default INFO)


class World:
    def __init__(self, lab: NetLab, base: Path, template: Path, spec: WorldSpec | None = None) -> None:
        self.lab = lab
        self.base = base
        self.spec = spec or WorldSpec()
        placement = {name: (lab.host(dc).netns, lab.address(dc)) for name, dc in self.spec.mysql.items()}
        self.sandbox = Sandbox(
            base / "mysql",
            self.spec.topology or master_replicas(len(self.spec.mysql) - 1),
            template_dir=template,
            placement=placement,
            slave_net_timeout=self.spec.slave_net_timeout,
        )
        self.nats: dict[str, Popen[bytes]] = {}
        self.consul: dict[str, Popen[bytes]] = {}
        self.services: dict[tuple[str, str], Popen[bytes]] = {}
        self.logs = base / "logs"

    # --- addresses -------------------------------------------------------------------------------
    def nats_url(self, dc: str) -> str:
        return f"nats://{self.lab.address(dc)}:{NATS_PORT}"

    def route_address(self, dc: str) -> str:
        """Where `dc`'s NATS node listens for its cluster peers: the DC's address, or with
        `nats_route_addresses` a second one (10.213.0.2x) that `NetLab.block` can cut alone."""
        if not self.spec.nats_route_addresses:
            return self.lab.address(dc)
        return f"10.213.0.{21 + self.spec.dcs.index(dc)}"

    def consul_url(self, dc: str) -> str:
        return f"http://{self.lab.address(dc)}:{CONSUL_PORT}"

    @property
    def api_url(self) -> str:
        return f"http://{self.lab.address(self.spec.api_dc)}:{API_PORT}"

    def server(self, name: str) -> str:
        return str(self.sandbox.key(name))

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, within: float = 180.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        await self.sandbox.start()
        if self.spec.nats_route_addresses:
            for dc in self.spec.dcs:
                self.lab.add_address(dc, self.route_address(dc))
        for dc in self.spec.dcs:
            self.start_nats(dc)
            self.start_consul(dc)
        await self._wait(self._nats_ready, "the NATS cluster", within)
        for dc in self.spec.dcs:
            config = self._write_config(dc)
            for service in SERVICES:
                self.start_service(dc, service, config)
            if dc == self.spec.api_dc:
                self.start_service(dc, "api", config)
        await self._wait(self._consul_names_master, "every DC's Consul to name the master", within)

    async def stop(self) -> None:
        for proc in [*self.services.values(), *self.consul.values(), *self.nats.values()]:
            self.lab.stop(proc)
        self.services.clear()
        self.consul.clear()
        self.nats.clear()
        await self.sandbox.stop()

    # --- parts -----------------------------------------------------------------------------------
    def start_nats(self, dc: str) -> None:
        routes = [f"nats-route://{self.route_address(d)}:{ROUTE_PORT}" for d in self.spec.dcs]
        server = NatsServer(
            self.base / "nats" / dc,
            host=self.lab.address(dc),
            port=NATS_PORT,
            monitor_port=MONITOR_PORT,
            server_name=f"baton-{dc}",
            cluster=ClusterConfig(name="baton", port=ROUTE_PORT, routes=routes, host=self.route_address(dc)),
        )
        server.store_dir.mkdir(parents=True, exist_ok=True)
        server.config_path.write_text(server.render_config())
        with open(self.logs / f"nats-{dc}.log", "ab") as log:
            self.nats[dc] = self.lab.spawn(
                dc, [str(find_nats_server()), "-c", str(server.config_path)], stdout=log
            )

    def start_consul(self, dc: str) -> None:
        argv = [sys.executable, "-m", "tests.consul_server", "--port", str(CONSUL_PORT)]
        argv += ["--host", self.lab.address(dc), "--dc", dc, "--data-dir", str(self.base / "consul" / dc)]
        with open(self.logs / f"consul-{dc}.log", "ab") as log:
            self.consul[dc] = self.lab.spawn(dc, argv, stdout=log, cwd=ROOT)

    def _write_config(self, dc: str) -> Path:
        sb = self.sandbox
        urls = [self.nats_url(dc)] + [self.nats_url(d) for d in self.spec.dcs if d != dc]
        dc_of = " ".join(f"WHEN '{self.lab.address(d)}' THEN '{d}'" for d in self.spec.dcs)
        config = {
            "BatonNatsURLs": urls,
            "BatonStreamReplicas": 3,
            "BatonNodeName": f"baton-{dc}",
            "InstancePollSeconds": self.spec.poll_s,
            "DiscoverySeeds": [self.server(sb.master)],
            "DiscoverByShowSlaveHosts": True,
            "MySQLHostnameResolveMethod": "@@report_host",
            "HostnameResolveMethod": "none",
            "MySQLTopologyUser": sb.topology_creds.user,
            "MySQLTopologyPassword": sb.topology_creds.password.get_secret_value(),
            "MySQLReplicationUser": sb.repl_creds.user,
            "MySQLReplicationPassword": sb.repl_creds.password.get_secret_value(),
            "MySQLConnectTimeoutSeconds": 1,
            "DetectClusterAliasQuery": f"SELECT '{CLUSTER_ALIAS}'",
            "DetectDataCenterQuery": f"SELECT CASE @@report_host {dc_of} ELSE '' END",
            "RecoverMasterClusterFilters": ["*"],
            "RecoverIntermediateMasterClusterFilters": ["*"],
            "KVClusterMasterPrefix": "mysql/master",
            "BatonConsulDataCenters": {
                d: {"Address": f"{self.lab.address(d)}:{CONSUL_PORT}", "Scheme": "http"}
                for d in self.spec.dcs
            },
            "ListenAddress": f"{self.lab.address(dc)}:{API_PORT}",
            "BackendDB": "sqlite",
            "SQLite3DataFile": str(self.base / f"api-{dc}.sqlite"),
            **self.spec.settings,
        }
        path = self.base / f"baton-{dc}.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    def start_service(self, dc: str, service: str, config: Path | None = None) -> Popen[bytes]:
        config = config or self.base / f"baton-{dc}.json"
        argv = [sys.executable, "-m", f"services.{service}", "--config", str(config)]
        argv += ["--log-level", self.spec.log_levels.get(service, "INFO")]
        if service == "kvpublisher":
            argv += ["--dc", dc]
        with open(self.logs / f"{service}-{dc}.log", "ab") as log:
            proc = self.lab.spawn(dc, argv, stdout=log, cwd=ROOT)
        self.services[(dc, service)] = proc
        return proc

    # --- readiness -------------------------------------------------------------------------------
    async def wait_nats_ready(self, within: float = 120.0) -> None:
        await self._wait(self._nats_ready, "the NATS cluster", within)

    async def _nats_ready(self) -> bool:
        """Every node answers /healthz (JetStream current with the meta leader), asked from its DC."""
        for dc in self.spec.dcs:
            code = (
                "import urllib.request, sys\n"
                f"urllib.request.urlopen('http://{self.lab.address(dc)}:{MONITOR_PORT}/healthz', timeout=2)\n"
            )
            done = await asyncio.to_thread(self.lab.run, dc, [sys.executable, "-c", code], 30)
            if done.returncode != 0:
                return False
        return True

    async def consul_values(self) -> dict[str, str | None]:
        """Each DC's `mysql/master/<alias>`, read from the observer namespace (None: no answer)."""
        code = (
            "import json, sys, urllib.request, urllib.error\n"
            "out = {}\n"
            "for dc, url in json.loads(sys.argv[1]).items():\n"
            "    try:\n"
            f"        out[dc] = urllib.request.urlopen(url + '/v1/kv/mysql/master/{CLUSTER_ALIAS}?raw',"
            " timeout=2).read().decode()\n"
            "    except urllib.error.HTTPError as e:\n"
            "        out[dc] = '' if e.code == 404 else None\n"
            "    except OSError:\n"
            "        out[dc] = None\n"
            "print(json.dumps(out))\n"
        )
        urls = json.dumps({dc: self.consul_url(dc) for dc in self.spec.dcs})
        done = await asyncio.to_thread(self.lab.run, OBSERVER, [sys.executable, "-c", code, urls], 30)
        if done.returncode != 0:
            return dict.fromkeys(self.spec.dcs)
        values: dict[str, str | None] = json.loads(done.stdout)
        return values

    async def api(self, path: str) -> object:
        """GET `path` from the API (in `api_dc`), from the observer namespace; None when it fails."""
        code = (
            "import json, sys, urllib.request\n"
            "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n"
        )
        done = await asyncio.to_thread(
            self.lab.run, OBSERVER, [sys.executable, "-c", code, self.api_url + path], 30
        )
        return json.loads(done.stdout) if done.returncode == 0 else None

    async def recoveries(self, *, expect_some: bool = False, within: float = 30.0) -> list[dict[str, object]]:
        """orchestrator's recovery audit (newest first), as the API shows it. Asked again while the API
        fails (or, with `expect_some`, answers with none) for up to `within` seconds: right after a DC
        rejoins, JetStream may answer "temporarily unavailable" for seconds. Also asked again while a
        record is still open: a recovery whose close could not be written (its stream without a leader
        after a NATS node died) is closed by the next leader's sweep, once JetStream has one again."""
        deadline = time.monotonic() + within
        while True:
            docs = await self.api(f"/api/audit-recovery/alias/{CLUSTER_ALIAS}")
            found = [d for d in docs if isinstance(d, dict)] if isinstance(docs, list) else None
            answered = found or (found is not None and not expect_some)
            if (answered and not any(d.get("IsActive") for d in found or [])) or time.monotonic() > deadline:
                return found or []
            await asyncio.sleep(1.0)

    async def leader_after(self, since: float, within: float = 60.0) -> str:
        """Wait until a recovery leader holds the lease and has held it since before `since` or was
        elected after it (its log says so), and return its DC. `since` is a monotonic time."""
        deadline = time.monotonic() + within
        elected_before = self._elections()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            status = await self.api("/api/status")
            details = status.get("Details") if isinstance(status, dict) else None
            leader = details.get("RecoveryLeader") if isinstance(details, dict) else None
            if leader and (self._elections() != elected_before or time.monotonic() - since > 8):
                for dc in self.spec.dcs:
                    if str(leader).startswith(f"baton-{dc}-"):
                        return dc
        raise AssertionError(f"no recovery leader within {within:g}s:\n{self.tail()}")

    async def stream_leader_dc(self, stream: str, within: float = 30.0) -> str:
        """The DC whose NATS node leads JetStream stream `stream` (`cluster.leader` in a node's /jsz),
        each node's monitor asked in turn (from the observer namespace) until one names a leader."""
        code = (
            "import json, sys, urllib.request\n"
            "doc = json.load(urllib.request.urlopen(sys.argv[1] + '/jsz?accounts=true&streams=true',"
            " timeout=2))\n"
            "for acc in doc.get('account_details') or []:\n"
            "    for s in acc.get('stream_detail') or []:\n"
            "        if s.get('name') == sys.argv[2]:\n"
            "            print((s.get('cluster') or {}).get('leader') or '')\n"
        )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for dc in self.spec.dcs:
                url = f"http://{self.lab.address(dc)}:{MONITOR_PORT}"
                done = await asyncio.to_thread(
                    self.lab.run, OBSERVER, [sys.executable, "-c", code, url, stream], 30
                )
                leader = done.stdout.strip() if done.returncode == 0 else ""
                for d in self.spec.dcs:
                    if leader == f"baton-{d}":
                        return d
            await asyncio.sleep(0.5)
        raise AssertionError(f"no leader of stream {stream} within {within:g}s")

    def _elections(self) -> int:
        return sum(
            (self.logs / f"recovery-{dc}.log").read_text(errors="replace").count(": elected with epoch ")
            for dc in self.spec.dcs
            if (self.logs / f"recovery-{dc}.log").exists()
        )

    def leader_dc(self) -> str | None:
        """The DC whose recovery process was elected last (highest epoch), from the services' logs."""
        best: tuple[int, str] | None = None
        for dc in self.spec.dcs:
            log = self.logs / f"recovery-{dc}.log"
            if not log.exists():
                continue
            for line in log.read_text(errors="replace").splitlines():
                if ": elected with epoch " in line:
                    epoch = int(line.rsplit(" ", 1)[-1])
                    if best is None or epoch > best[0]:
                        best = (epoch, dc)
        return best[1] if best else None

    async def _consul_names_master(self) -> bool:
        values = await self.consul_values()
        return all(v == self.server(self.sandbox.master) for v in values.values())

    async def _wait(self, check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
        deadline = time.monotonic() + within
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; logs in {self.logs}:\n{self.tail()}")
            for (dc, service), proc in self.services.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{service} in {dc} exited {proc.returncode}:\n{self.tail()}")
            await asyncio.sleep(0.5)

    def tail(self, lines: int = 15) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)
