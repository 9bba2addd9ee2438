"""`baton probe HOST:PORT` and `baton config check FILE`: look at one instance, or a config, by hand.

Both are what an operator reaches for first at 3 a.m. (is the server answering? is my config valid?),
so every failure is one line naming the cause, with a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from libs.config.derive import probe_settings, topology_credentials
from libs.config.loader import load_settings
from libs.models import InstanceKey, InstanceSnapshot
from libs.mysql import probe, require_reachable

config_app = typer.Typer(help="Validate and show configuration.", no_args_is_help=True)


def parse_key(text: str) -> InstanceKey:
    """A `host:port` from the command line, or a one-line usage error."""
    try:
        return InstanceKey.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _describe(s: InstanceSnapshot) -> list[str]:
    lines = [
        f"{s.key}  {s.flavor.value if s.flavor else '?'} {s.version}  server_id={s.server_id}",
        f"  read_only={s.read_only} log_bin={s.log_bin} log_slave_updates={s.log_slave_updates} "
        f"binlog_format={s.binlog_format}",
        f"  gtid={s.gtid_position or '-'}  binlog={s.binlog_file}:{s.binlog_pos}",
    ]
    if s.replication is not None:
        r = s.replication
        lines.append(
            f"  replicates from {r.master}: io={r.io_state.value} sql={'Yes' if r.sql_running else 'No'} "
            f"lag={r.seconds_behind_master} delay={r.sql_delay}"
        )
        if r.last_io_errno or r.last_sql_errno:
            lines.append(f"  last errors: io {r.last_io_errno} {r.last_io_error!r} sql {r.last_sql_errno}")
    if s.replicas:
        lines.append("  replicas: " + ", ".join(str(k) for k in s.replicas))
    lines.append(f"  probe latency {s.latency_ms:.1f} ms")
    return lines


def probe_command(
    instance: str = typer.Argument(..., help="host:port of the instance"),
    config: Path | None = typer.Option(None, "--config", "-c", help="orchestrator-style JSON config"),
    as_json: bool = typer.Option(False, "--json", help="print the snapshot as JSON"),
) -> None:
    """Probe one instance once and show what Baton sees."""
    key = parse_key(instance)
    settings = load_settings(config)
    creds = topology_credentials(settings)

    async def run() -> InstanceSnapshot:
        return require_reachable(await probe(key, creds, probe_settings(settings)))

    snapshot = asyncio.run(run())
    if as_json:
        typer.echo(snapshot.model_dump_json(indent=2))
    else:
        typer.echo("\n".join(_describe(snapshot)))


@config_app.command("check")
def config_check(
    path: Path = typer.Argument(..., help="the JSON config file"),
    show: bool = typer.Option(False, "--show", help="print the effective settings (secrets redacted)"),
) -> None:
    """Load a config file as a service would; exit non-zero with the key named if it is invalid."""
    settings = load_settings(path)
    if show:
        typer.echo(json.dumps(settings.redacted_dict(), indent=2, default=str, sort_keys=True))
    else:
        typer.echo(f"{path}: ok")
