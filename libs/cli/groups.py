"""Registry of the CLI's command groups (one line per area)."""

from __future__ import annotations

from importlib.metadata import version as _dist_version

import typer


def _version() -> None:
    """Print Baton's version."""
    typer.echo(_dist_version("baton"))


def register(app: typer.Typer) -> None:
    """Add every area's commands to the root app."""
    from libs.cli import api_commands, discovery, question_commands, refactor_commands
    from libs.cli.inspect import config_app, probe_command
    from libs.cli.up import up_command
    from libs.sandbox.cli import app as sandbox_app

    app.command("version")(_version)
    app.command("up")(up_command)
    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(config_app, name="config")
    app.command("probe")(probe_command)
    discovery.register(app)  # discover / forget: straight to NATS (works without the API)
    api_commands.register(app)  # orchestrator-client's verbs, through the API
    question_commands.register(app)  # orchestrator-client's questions, tags, maintenance, raft-*
    refactor_commands.register(app)  # orchestrator-client's refactoring and replication control
