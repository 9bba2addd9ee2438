"""orchestrator-client's mutating verbs as `baton <verb>`: topology refactoring and replication control.

    baton relocate -i db3:3306 -d db2:3306       baton move-up -i db3:3306
    baton take-master -i db2:3306                baton relocate-replicas -i db1 -d db2 --pattern 'db-[34]'
    baton stop-replica -i db3:3306               baton delay-replication -i db3 -S 3600
    baton purge-binary-logs -i db1 -n mysql-bin.000042
    baton restart-replica-statements -i db3 -q "SET GLOBAL slave_parallel_threads = 4"

Same options as orchestrator-client (-i instance, -d destination, -S seconds, -n binlog, -q query) and
the same output: a move prints `instance<its master` (after the move), a bulk move the replicas moved,
an instance command the instance; `--json` prints the API's Details. Exit codes as every API verb
(libs/cli/api_commands.py): 0 done, 1 refused or failed (the reason on stderr, in orchestrator's
words), 2 bad usage, 3 API unreachable, 4 not authorised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import typer

from libs.cli.api_commands import Api, Dest, Inst, Json, _key, _lines, _run, err, hostport
from libs.cli.client import DEFAULT_API

Pattern = Annotated[str, typer.Option("--pattern", help="only the replicas matching this regular expression")]
Seconds = Annotated[str, typer.Option("-S", "--seconds", help="replication delay in seconds")]
Binlog = Annotated[str, typer.Option("-n", "--binlog", help="purge binary logs up to this one")]
Query = Annotated[str, typer.Option("-q", "--query", help="the statement to wrap")]

PANEL = "API (orchestrator-client refactoring)"
# orchestrator-client's commands, by how they are called and what they print
MOVES = ("relocate", "match", "move-below", "move-equivalent", "move-gtid", "repoint")
SINGULAR_MOVES = ("move-up", "match-up", "make-co-master", "take-master", "take-siblings")
BULK = ("relocate-replicas", "move-replicas-gtid")
OPTIONAL_DEST_BULK = ("move-up-replicas", "match-up-replicas", "repoint-replicas", "regroup-replicas")
INSTANCE = (
    "stop-replica", "stop-replica-nice", "start-replica", "restart-replica", "reset-replica",
    "detach-replica", "reattach-replica", "detach-replica-master-host", "reattach-replica-master-host",
    "skip-query", "enable-semi-sync-master", "disable-semi-sync-master", "enable-semi-sync-replica",
    "disable-semi-sync-replica", "set-read-only", "set-writeable", "flush-binary-logs",
    "gtid-errant-reset-master", "gtid-errant-inject-empty",
)  # fmt: skip


def _moved(details: Any) -> None:
    """`instance<master`, as orchestrator-client prints a move."""
    if isinstance(details, dict):
        _lines([f"{_key(details.get('Key'))}<{_key(details.get('MasterKey'))}"])


def _keys(details: Any) -> None:
    _lines([_key(d.get("Key")) for d in details or [] if isinstance(d, dict)])


def _instance(details: Any) -> None:
    if isinstance(details, dict):
        _lines([_key(details.get("Key"))])


def _call(
    api: str, as_json: bool, path: str, show: Callable[[Any], None], params: dict[str, Any] | None = None
) -> None:
    _run(api, as_json, lambda c: c.details(path, params), show)


def _move_command(verb: str) -> Callable[..., None]:
    def command(
        instance: Inst, destination: Dest = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        if not destination:
            raise_usage("destination must be provided (-d HOST:PORT)")
        _call(api, as_json, f"{verb}/{hostport(instance)}/{hostport(destination or '')}", _moved)

    return command


def _singular_command(verb: str) -> Callable[..., None]:
    def command(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        _call(api, as_json, f"{verb}/{hostport(instance)}", _moved)

    return command


def _bulk_command(verb: str) -> Callable[..., None]:
    def command(
        instance: Inst,
        destination: Dest = None,
        pattern: Pattern = "",
        api: Api = DEFAULT_API,
        as_json: Json = False,
    ) -> None:
        if verb in BULK and not destination:
            raise_usage("destination must be provided (-d HOST:PORT)")
        path = f"{verb}/{hostport(instance)}" + (f"/{hostport(destination)}" if destination else "")
        show = _instance if verb == "regroup-replicas" else _keys
        _call(api, as_json, path, show, {"pattern": pattern} if pattern else None)

    return command


def _instance_command(verb: str) -> Callable[..., None]:
    def command(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        _call(api, as_json, f"{verb}/{hostport(instance)}", _instance)

    return command


def register(app: typer.Typer) -> None:
    """Add the refactoring and replication-control verbs to the root `baton` app."""

    def add(name: str, fn: Callable[..., None], doc: str) -> None:
        fn.__doc__ = doc
        app.command(name, rich_help_panel=PANEL)(fn)

    for verb in MOVES:
        add(verb, _move_command(verb), f"orchestrator's {verb}: the instance below the destination.")
    for verb in SINGULAR_MOVES:
        add(verb, _singular_command(verb), f"orchestrator's {verb}; prints instance<master.")
    for verb in (*BULK, *OPTIONAL_DEST_BULK):
        add(verb, _bulk_command(verb), f"orchestrator's {verb}: replicas of the instance (--pattern).")
    for verb in INSTANCE:
        add(verb, _instance_command(verb), f"orchestrator's {verb} on the instance.")

    def delay_replication(
        instance: Inst, seconds: Seconds = "", api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        if not seconds:
            raise_usage("seconds must be provided (-S SECONDS)")
        _call(api, as_json, f"delay-replication/{hostport(instance)}/{quote(seconds, safe='')}", _instance)

    add("delay-replication", delay_replication, "CHANGE MASTER TO MASTER_DELAY = seconds on the replica.")

    def purge_binary_logs(
        instance: Inst, binlog: Binlog = "", api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        if not binlog:
            raise_usage("binlog must be provided (-n BINLOG)")
        _call(api, as_json, f"purge-binary-logs/{hostport(instance)}/{quote(binlog, safe='')}", _instance)

    add("purge-binary-logs", purge_binary_logs, "PURGE BINARY LOGS TO the given log (refused while needed).")

    def restart_statements(
        instance: Inst, query: Query = "", api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        if not query:
            raise_usage("query must be provided (-q QUERY)")
        _call(
            api,
            as_json,
            f"restart-replica-statements/{hostport(instance)}",
            lambda r: _lines(list(r or [])),
            {"q": query},
        )

    add(
        "restart-replica-statements",
        restart_statements,
        "The statements that restart replication around a query.",
    )


def raise_usage(message: str) -> None:
    err.print(f"baton: error: {message}", markup=False)
    raise typer.Exit(2)
