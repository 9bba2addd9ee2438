"""Registry of the CLI's command groups (one line per area)."""

from __future__ import annotations

from importlib.metadata import version as _dist_version

import typer


def _version() -> None:
    """Print Baton's version."""
    typer.echo(_dist_version("baton"))


def register(app: typer.Typer) -> None:
    """Add every area's commands to the root app."""
    from libs.cli.inspect import config_app, probe_command
    from libs.sandbox.cli import app as sandbox_app

    app.command("version")(_version)
    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(config_app, name="config")
    app.command("probe")(probe_command)
