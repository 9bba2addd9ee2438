"""The `baton` command line.

Each area registers a typer sub-app or command here. Every error Baton raises on purpose (`BatonError`)
becomes one line on stderr and a non-zero exit code; an operator at 3 a.m. never sees a traceback for a
bad config or an unreachable host.
"""

from __future__ import annotations

import sys

import typer

from libs.errors import BatonError

app = typer.Typer(
    name="baton",
    help="Baton: high availability for MySQL/MariaDB replication.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Baton: high availability for MySQL/MariaDB replication."""


EXIT_ERROR = 1
EXIT_USAGE = 2


def _register() -> None:
    """Attach the command groups. Imported lazily so `baton --help` stays fast and import errors of one
    area cannot break the others."""
    from libs.cli import groups

    groups.register(app)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except BatonError as exc:
        typer.echo(f"baton: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        typer.echo("baton: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
