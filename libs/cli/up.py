"""`baton up`: the whole of Baton in one process, on its embedded default.

With no arguments: an embedded nats-server (JetStream, data under the state dir), SQLite for the read
model, the prober, analyzer, recovery and API services (and the kvpublisher when a Consul is configured),
the API on 127.0.0.1:3000. `--sandbox` also starts a local MariaDB topology (1 master, 3 replicas),
discovers it and opts it into automated recovery. SIGINT/SIGTERM stop everything cleanly (sandbox
servers included); a restart with the same `--state-dir` resumes from what NATS and SQLite kept.

Each service runs through its `serve(settings, stop)` (libs.service_main), exactly as `python -m
services.<name>` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr
from rich.console import Console

from libs.bus.connection import without_credentials
from libs.bus.server import NatsServer, free_port
from libs.config import Settings, load_settings
from libs.errors import BatonError, ConfigError
from libs.sandbox import Sandbox
from libs.sandbox.server import port_is_free
from libs.sandbox.spec import master_replicas
from libs.service_main import install_signal_handlers
from libs.telemetry import setup_telemetry

log = logging.getLogger("baton.up")
console = Console(stderr=True)

SANDBOX_BASE_PORT = 23306
DEFAULT_NATS_PORT = 4322  # not 4222: a system NATS may already listen there

ServeFn = Callable[[Settings, asyncio.Event], Awaitable[None]]


def _state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "up.json"
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                return data
    return {}


def _save_state(state_dir: Path, state: dict[str, Any]) -> None:
    (state_dir / "up.json").write_text(json.dumps(state, indent=2))


def _nats_port(state: dict[str, Any]) -> int:
    """The port used last time (so clients' saved URLs keep working), else 4322, else any free one."""
    for port in (state.get("nats_port"), DEFAULT_NATS_PORT):
        if isinstance(port, int) and port_is_free(port):
            return port
    return free_port()


def embedded_settings(
    settings: Settings,
    *,
    state_dir: Path,
    nats_url: str,
    listen: str | None,
    sandbox: Sandbox | None,
    explicit: set[str],
) -> Settings:
    """The configuration `up` runs with: the user's, plus what the embedded default needs."""
    update: dict[str, Any] = {"BatonNatsURLs": [nats_url], "BatonStateDir": str(state_dir)}
    if listen:
        update["ListenAddress"] = listen
    if not settings.BatonReadModelURL and "BackendDB" not in explicit:
        update["BackendDB"] = "sqlite"
        update["SQLite3DataFile"] = str(state_dir / "baton.sqlite")
    if sandbox is not None:
        update.update(
            {
                "DiscoverySeeds": [str(sandbox.key(sandbox.master))],
                "DiscoverByShowSlaveHosts": True,
                "MySQLHostnameResolveMethod": "@@report_host",
                "HostnameResolveMethod": "none",
            }
        )
        creds, repl = sandbox.topology_creds, sandbox.repl_creds
        if "MySQLTopologyUser" not in explicit:
            update |= {"MySQLTopologyUser": creds.user, "MySQLTopologyPassword": creds.password}
        if "MySQLReplicationUser" not in explicit:
            update |= {"MySQLReplicationUser": repl.user, "MySQLReplicationPassword": repl.password}
        if "RecoverMasterClusterFilters" not in explicit:
            update["RecoverMasterClusterFilters"] = ["*"]
        if "RecoverIntermediateMasterClusterFilters" not in explicit:
            update["RecoverIntermediateMasterClusterFilters"] = ["*"]
        if "InstancePollSeconds" not in explicit:
            update["InstancePollSeconds"] = 1
    return settings.model_copy(update=update)


NATS_SECURITY_KEYS = (
    "BatonNatsCAFile",
    "BatonNatsCertFile",
    "BatonNatsKeyFile",
    "BatonNatsUser",
    "BatonNatsPassword",
    "BatonNatsToken",
    "BatonNatsCredsFile",
    "BatonNatsNKeySeedFile",
)


def _refuse_nats_security_for_embedded(settings: Settings) -> None:
    """The embedded nats-server listens on loopback without TLS or auth: NATS security keys describe an
    external server, so asking for them without `--nats` is an error rather than silently unused."""
    for key in NATS_SECURITY_KEYS:
        value = getattr(settings, key)
        if value.get_secret_value() if isinstance(value, SecretStr) else value:
            raise ConfigError(
                f"{key}: set, but `baton up` without --nats runs an embedded NATS without TLS or auth; "
                "pass --nats URL of the secured server (or unset the BatonNats* security keys)"
            )


def services_for(settings: Settings) -> dict[str, ServeFn]:
    """The services `up` runs. Imported here so `baton --help` does not pay for them."""
    from services.analyzer.service import serve as analyzer
    from services.api.serve import serve as api
    from services.kvpublisher.service import serve as kvpublisher
    from services.prober.service import serve as prober
    from services.recovery.service import serve as recovery

    chosen: dict[str, ServeFn] = {"prober": prober, "analyzer": analyzer, "recovery": recovery, "api": api}
    if settings.consul_data_centers():
        chosen["kvpublisher"] = kvpublisher
    else:
        log.info("no Consul configured (ConsulAddress / BatonConsulDataCenters): kvpublisher not started")
    return chosen


async def run_services(settings: Settings, stop: asyncio.Event) -> None:
    """Run every service until `stop`; if one fails, stop the others and raise its error."""
    failures: list[BaseException] = []

    async def guarded(name: str, serve: ServeFn) -> None:
        try:
            await serve(settings, stop)
        except Exception as exc:  # noqa: BLE001 - any failure of one service must stop the others
            failures.append(exc)
            log.error("%s failed: %s", name, exc)
            stop.set()

    await asyncio.gather(*(guarded(name, fn) for name, fn in services_for(settings).items()))
    if failures:
        first = failures[0]
        raise first if isinstance(first, BatonError) else BatonError(f"a service failed: {first}")


async def up(
    settings: Settings,
    explicit: set[str],
    state_dir: Path,
    listen: str | None,
    nats: str | None,
    with_sandbox: bool,
    replicas: int,
    slave_net_timeout: int = 4,
) -> None:
    """Run everything until SIGINT/SIGTERM. `explicit`: the keys the operator set (file or env)."""
    state = _state(state_dir)
    # one process, one set of metrics: with "prometheus" the API serves them all at /metrics
    setup_telemetry("baton", settings.BatonTelemetryExporter, settings.BatonTelemetryEndpoint or None)
    stop = asyncio.Event()
    install_signal_handlers(stop)

    server: NatsServer | None = None
    sandbox: Sandbox | None = None
    try:
        if nats:
            nats_url = nats
        else:
            _refuse_nats_security_for_embedded(settings)
            server = NatsServer(state_dir / "nats", port=_nats_port(state))
            await asyncio.to_thread(server.start)
            nats_url = server.url
            state["nats_port"] = server.port
        shown = ", ".join(without_credentials(u) for u in nats_url.split(","))
        console.print(f"[bold]NATS[/] {shown}" + (" (embedded)" if server else ""))
        if with_sandbox:
            started = time.perf_counter()
            sandbox = Sandbox(
                state_dir / "sandbox",
                master_replicas(replicas),
                base_port=SANDBOX_BASE_PORT,
                slave_net_timeout=slave_net_timeout,
            )
            await sandbox.start()
            names = ", ".join(str(sandbox.key(n)) for n in sandbox.names)
            console.print(f"[bold]sandbox[/] up in {time.perf_counter() - started:.1f}s: {names}")
        _save_state(state_dir, state)
        run_settings = embedded_settings(
            settings,
            state_dir=state_dir,
            nats_url=nats_url,
            listen=listen,
            sandbox=sandbox,
            explicit=explicit,
        )
        console.print(
            f"[bold]API[/] {'https' if run_settings.UseSSL else 'http'}://{run_settings.ListenAddress}"
            "  (try: baton clusters; baton topology -a ...)"
        )
        console.print("Ctrl-C stops everything.")
        await run_services(run_settings, stop)
    finally:
        if sandbox is not None:
            console.print("stopping the sandbox ...")
            await sandbox.stop()
        if server is not None:
            await asyncio.to_thread(server.stop)


def up_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="orchestrator-style JSON config"),
    state_dir: Path = typer.Option(Path(".baton"), "--state-dir", help="where NATS and SQLite keep data"),
    listen: str | None = typer.Option(None, "--listen", help="API HOST:PORT [default: ListenAddress]"),
    nats: str | None = typer.Option(None, "--nats", help="use this NATS instead of the embedded one"),
    sandbox: bool = typer.Option(False, "--sandbox", help="also run a local MariaDB topology"),
    replicas: int = typer.Option(3, "--replicas", min=1, help="sandbox replicas"),
    slave_net_timeout: int = typer.Option(
        4, "--slave-net-timeout", min=1, help="the sandbox replicas' slave_net_timeout"
    ),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Run all of Baton in one process (embedded NATS, SQLite, every service, the API)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(config)  # a missing or invalid file fails here, naming the key
    explicit = set(json.loads(config.read_text())) if config is not None else set()
    explicit |= {name[len("BATON_") :] for name in os.environ if name.startswith("BATON_")}
    state_dir = state_dir.expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(up(settings, explicit, state_dir, listen, nats, sandbox, replicas, slave_net_timeout))
