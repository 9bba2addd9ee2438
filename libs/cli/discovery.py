"""`baton discover HOST:PORT` and `baton forget HOST:PORT`: add instances to, and remove them from, the
registry the probers watch (KV `baton_instances`, format in `services/prober/registry.py`).

`discover` probes the seed itself first, with the configured credentials and timeouts, so a typo, a
dead host or a wrong password is one line naming the cause (exit 1), not a silent registration that
never works. It registers the instance under its canonical name (MySQLHostnameResolveMethod); the
probers then follow masters up and replicas down. With `--wait` it waits until every instance of the
seed's topology is registered and freshly probed, and prints the replication tree.

Register with the root app: `from libs.cli import discovery; discovery.register(app)`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import nats.js.errors
import typer
from nats.js import JetStreamContext
from rich.console import Console
from rich.tree import Tree

from libs.bus.connection import Bus, bus_errors, connect
from libs.bus.provision import provision
from libs.bus.subjects import snapshot_subject
from libs.config import Settings, load_settings
from libs.config.derive import nats_security, probe_settings, topology_credentials
from libs.discovery import registry as reg
from libs.discovery.names import Names
from libs.errors import BatonError, ConfigError
from libs.models import InstanceKey, InstanceSnapshot, utcnow
from libs.mysql import ConnectionPool, probe, require_reachable
from libs.topology.naming import canonical_key, discovery_candidates, follow
from libs.topology.view import ClusterView, InstanceState, fold, group_clusters

SNAPSHOT_STREAM = "BATON_SNAPSHOTS"

Nats = typer.Option(None, "--nats", help="NATS URL(s), comma-separated [default: BatonNatsURLs].")
ConfigFile = typer.Option(None, "--config", help="orchestrator-style JSON config file.")


def _key(text: str, settings: Settings) -> InstanceKey:
    try:
        return InstanceKey.parse(text, default_port=settings.DefaultInstancePort)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


async def _bus(settings: Settings, nats_urls: str | None) -> Bus:
    urls = nats_urls or ",".join(settings.BatonNatsURLs)
    if not urls:
        raise ConfigError("no NATS server: pass --nats URL or set BatonNatsURLs")
    bus = await connect(urls, f"baton-cli {socket.gethostname()}", security=nats_security(settings))
    try:
        await provision(bus.js, settings.BatonStreamReplicas)
    except BatonError:
        await bus.close()
        raise
    return bus


async def latest_snapshot(js: JetStreamContext, key: InstanceKey) -> InstanceSnapshot | None:
    """The last snapshot of `key` in the snapshot stream, if any."""
    with bus_errors(f"reading the snapshot of {key}"):
        try:
            msg = await js.get_last_msg(SNAPSHOT_STREAM, snapshot_subject(key))
        except nats.js.errors.NotFoundError:
            return None
    return InstanceSnapshot.model_validate_json(msg.data or b"{}")


def topology_of(
    seed: InstanceKey,
    snapshots: Mapping[InstanceKey, InstanceSnapshot],
    aliases: Mapping[InstanceKey, InstanceKey],
    fresh_since: datetime,
) -> tuple[set[InstanceKey], set[InstanceKey]]:
    """(instances reachable from `seed` through masters and replicas, those still missing a snapshot
    probed since `fresh_since`). The topology is fully discovered when the second set is empty."""
    seen: set[InstanceKey] = set()
    missing: set[InstanceKey] = set()
    todo = [follow(seed, aliases)]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        snap = snapshots.get(key)
        if snap is None or snap.probed_at < fresh_since:
            missing.add(key)
            continue
        todo.extend(follow(k, aliases) for k in discovery_candidates(snap))
    return seen, missing


def _label(state: InstanceState) -> str:
    info, last = state.info, state.last_probe
    role = "rw" if not info.read_only else "ro"
    text = f"[bold]{state.key}[/] {info.version or '?'} {role}"
    if info.replication is not None:
        lag = info.replication.seconds_behind_master
        text += f" io={info.replication.io_state.value} sql={'Yes' if info.replication.sql_running else 'No'}"
        text += f" lag={lag if lag is not None else '?'}s"
    if not last.reachable:
        text += f" [red]unreachable: {last.error}[/]"
    return text


def render_tree(view: ClusterView) -> Tree:
    """master → replicas, recursively, from the latest snapshots."""
    title = view.name if view.alias == view.name else f"{view.name} ({view.alias})"
    tree = Tree(f"cluster [bold cyan]{title}[/]")

    def add(node: Tree, state: InstanceState, seen: frozenset[InstanceKey]) -> None:
        branch = node.add(_label(state))
        for child in view.replicas_of(state.key):
            if child.key not in seen:
                add(branch, child, seen | {child.key})

    for master in view.masters:
        add(tree, master, frozenset({master.key}))
    return tree


async def _wait_and_show(js: JetStreamContext, seed: InstanceKey, timeout_s: float, console: Console) -> None:
    fresh_since = utcnow() - timedelta(seconds=0.5)
    deadline = time.monotonic() + timeout_s
    while True:
        entries = await reg.read_registry(js)
        aliases = {a: k for k, e in entries.items() for a in e.alias_keys()}
        snaps: dict[InstanceKey, InstanceSnapshot] = {}
        for key in entries:
            snap = await latest_snapshot(js, key)
            if snap is not None:
                snaps[key] = snap
        members, missing = topology_of(seed, snaps, aliases, fresh_since)
        if not missing:
            break
        if time.monotonic() > deadline:
            names = ", ".join(sorted(str(k) for k in missing))
            raise BatonError(
                f"topology of {seed} not fully discovered within {timeout_s:g}s (waiting for {names})"
            )
        await asyncio.sleep(0.5)
    states = [fold(None, snaps[k]) for k in members if k in snaps]
    for view in group_clusters(states):
        console.print(render_tree(view))


async def _discover(
    text: str, nats_urls: str | None, settings: Settings, wait: bool, timeout_s: float
) -> None:
    console = Console()
    names = Names(settings.HostnameResolveMethod, settings.MySQLHostnameResolveMethod)
    key = await names.resolve(_key(text, settings))
    pool = ConnectionPool(
        connect_timeout=settings.MySQLConnectTimeoutSeconds,
        read_timeout=settings.MySQLDiscoveryReadTimeoutSeconds,
    )
    try:
        snap = require_reachable(
            await probe(
                key, topology_credentials(settings), probe_settings(settings), pool=pool, prober="cli"
            )
        )
    finally:
        pool.close()
    canon = canonical_key(key, settings.MySQLHostnameResolveMethod, snap)
    aliases = (key,) if canon != key else ()
    async with await _bus(settings, nats_urls) as bus:
        created = await reg.register(
            bus.js, canon, source="cli", added_by=f"cli@{socket.gethostname()}", aliases=aliases
        )
        shown = f"{canon} (reached as {key})" if aliases else str(canon)
        console.print(f"registered {shown}" if created else f"{shown} was already registered")
        if wait:
            await _wait_and_show(bus.js, canon, timeout_s, console)


def discover(
    instance: str = typer.Argument(..., metavar="HOST:PORT", help="Any instance of the topology."),
    nats: str | None = Nats,
    config: Path | None = ConfigFile,
    wait: bool = typer.Option(False, "--wait", help="Wait for the whole topology and print it."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, help="How long --wait waits (seconds)."),
) -> None:
    """Probe an instance and register it; the probers then discover its whole topology."""
    settings = load_settings(config)
    asyncio.run(_discover(instance, nats, settings, wait, timeout))


async def _forget(text: str, nats_urls: str | None, settings: Settings) -> None:
    key = _key(text, settings)
    async with await _bus(settings, nats_urls) as bus:
        if not await reg.forget(bus.js, key):
            raise BatonError(f"{key} is not registered")
    Console().print(f"forgot {key}")


def forget(
    instance: str = typer.Argument(..., metavar="HOST:PORT"),
    nats: str | None = Nats,
    config: Path | None = ConfigFile,
) -> None:
    """Remove an instance from the registry (probers stop probing it; a live replica of a known
    master is found again at the master's next probe, as with orchestrator)."""
    settings = load_settings(config)
    asyncio.run(_forget(instance, nats, settings))


def register(app: typer.Typer) -> None:
    app.command("discover")(discover)
    app.command("forget")(forget)
