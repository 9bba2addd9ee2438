"""`baton sandbox up|down|status`: a local MariaDB topology to try Baton on and to test against."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import typer
from rich.console import Console

from libs.aio import Interrupted, run_interruptible
from libs.sandbox.sandbox import REPL_USER, TOPOLOGY_USER, Sandbox
from libs.sandbox.spec import SHAPES, shape
from libs.sandbox.status import collect, render

app = typer.Typer(
    name="sandbox",
    help="Local MariaDB replication topologies on 127.0.0.1 (for trying Baton and for tests).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def default_base_dir() -> Path:
    return Path(os.environ.get("BATON_SANDBOX_DIR") or Path.home() / ".baton" / "sandbox")


BaseDir = typer.Option(
    None, "--base-dir", help="Sandbox directory [default: $BATON_SANDBOX_DIR or ~/.baton/sandbox]"
)


@app.command("up")
def up(
    replicas: int = typer.Option(
        3, "--replicas", "-n", min=0, help="Plain replicas (where the shape has them)."
    ),
    shape_name: str = typer.Option("replicas", "--shape", help=f"One of: {', '.join(SHAPES)}."),
    base_dir: Path | None = BaseDir,
    slave_net_timeout: int = typer.Option(
        4, "--slave-net-timeout", min=1, help="Replicas' slave_net_timeout."
    ),
) -> None:
    """Start a topology and wait until every replica replicates."""
    spec = shape(shape_name, replicas)
    sb = Sandbox(base_dir or default_base_dir(), spec, slave_net_timeout=slave_net_timeout)
    started = time.perf_counter()
    try:
        run_interruptible(sb.start())  # a signal mid-start stops the nodes started so far
    except Interrupted as exc:
        typer.echo(f"sandbox up {exc}: every node it started is stopped", err=True)
        raise typer.Exit(exc.exit_code) from None
    elapsed = time.perf_counter() - started
    console = Console()
    console.print(render(sb, asyncio.run(collect(sb))))
    console.print(
        f"up in {elapsed:.1f}s; topology user [bold]{TOPOLOGY_USER}[/], replication user [bold]{REPL_USER}[/]"
        f" (passwords in libs/sandbox/sandbox.py); stop with `baton sandbox down`"
    )


@app.command("down")
def down(
    base_dir: Path | None = BaseDir,
    purge: bool = typer.Option(False, "--purge", help="Also delete the cached template data dir."),
) -> None:
    """Stop every node and delete their data dirs."""
    base = (base_dir or default_base_dir()).expanduser().resolve()
    sb = Sandbox.attach(base)
    asyncio.run(sb.stop())
    if purge:
        shutil.rmtree(sb.template_dir, ignore_errors=True)
    typer.echo(f"sandbox in {base} stopped and removed")


@app.command("status")
def status(base_dir: Path | None = BaseDir) -> None:
    """Show the replication tree as the servers report it now."""
    sb = Sandbox.attach(base_dir or default_base_dir())
    Console().print(render(sb, asyncio.run(collect(sb))))
