"""Probe one instance: everything orchestrator's ReadTopologyInstance learns, in ONE round trip.

The dialect is known from the connection handshake before the first query, so every statement of a
probe (global variables, status, binlog status, replica status, replica hosts, and the operator's
optional queries) goes out as a single multi-statement request on the instance's pooled connection.

Outcomes, mirroring orchestrator's bookkeeping:
- the whole batch answered -> `reachable=True`;
- the first statement (the variables row) answered but a later core statement failed -> `reachable=
  False, partial=True` with the identity fields of the first row ("last check partial success");
- nothing answered -> `InstanceSnapshot.unreachable(...)` with a one-line error and the MySQL errno
  (2003 refused/connect timeout, 1045 denied, 2013 lost/read timeout).
A failing optional query (data center, alias, promotion rule, lag; MySQL's heartbeat statement) records
nothing and fails nothing. Data center, region and physical environment come from the hostname patterns
(`libs.topology.placement`, also on an unreachable snapshot), overridden by their queries' answers.
Replicas also report what their IO thread hears from the master (heartbeat period and count, see
`normalize_heartbeats`), which the analysis needs to tell a hung master from an idle one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from libs.errors import ProbeError
from libs.models import Flavor, InstanceKey, InstanceSnapshot, PromotionRule, SemiSyncState, utcnow
from libs.mysql.connection import (
    ConnectionPool,
    Credentials,
    MySQLConnection,
    MySQLError,
    ProbeSettings,
    Row,
    default_pool,
    translate,
)
from libs.mysql.dialect import (
    Dialect,
    normalize_heartbeats,
    normalize_processlist_hosts,
    normalize_replica_hosts,
    normalize_replication_row,
    normalize_semi_sync,
)
from libs.topology.naming import cluster_alias
from libs.topology.placement import placement

# Names of the optional per-instance queries, in the order they are appended to the batch.
_OPTIONAL = (
    "replication_lag",
    "data_center",
    "region",
    "physical_environment",
    "cluster_alias",
    "promotion_rule",
    "semi_sync_priority",
)
_PLACES = ("data_center", "region", "physical_environment")
# The dialect's heartbeat statement (MySQL's performance_schema) rides with the optional ones: a server
# that refuses it (performance_schema off, no privilege) is still probed, its heartbeats unknown.
_HEARTBEATS = "heartbeats"


def _optional_queries(settings: ProbeSettings) -> list[tuple[str, str]]:
    raw = {
        "replication_lag": settings.replication_lag_query,
        "data_center": settings.detect_data_center_query,
        "region": settings.detect_region_query,
        "physical_environment": settings.detect_physical_environment_query,
        "cluster_alias": settings.detect_cluster_alias_query,
        "promotion_rule": settings.detect_promotion_rule_query,
        "semi_sync_priority": settings.detect_semi_sync_enforced_query,
    }
    out: list[tuple[str, str]] = []
    for name in _OPTIONAL:
        sql = (raw[name] or "").strip().rstrip(";").strip()
        if sql:
            out.append((name, sql))
    return out


def _core_statements(dialect: Dialect, settings: ProbeSettings) -> list[str]:
    stmts = [dialect.variables_query, dialect.status_query]
    if dialect.semi_sync_variables_query:
        stmts.append(dialect.semi_sync_variables_query)
    stmts.append(dialect.show_binlog_status)
    stmts.append(dialect.show_replica_status)
    stmts.append(
        dialect.show_replica_hosts if settings.discover_by_show_slave_hosts else dialect.processlist_replicas
    )
    return stmts


def _flag(value: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode()
    return str(value).upper() in ("1", "ON", "YES", "TRUE")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _name_value(rows: list[Row]) -> dict[str, Any]:
    return {_text(r.get("Variable_name")).lower(): r.get("Value") for r in rows}


def _first_value(rows: list[Row]) -> str | None:
    if not rows:
        return None
    value = next(iter(rows[0].values()), None)
    return None if value is None else _text(value)


def _identity(key: InstanceKey, dialect: Dialect, v: Mapping[str, Any]) -> dict[str, Any]:
    """Fields of the first (variables) row."""
    fields: dict[str, Any] = {
        "server_id": int(v["server_id"]),
        "hostname": _text(v.get("hostname")) or None,
        "report_host": _text(v.get("report_host")) or None,
        "version": _text(v.get("version")),
        "version_comment": _text(v.get("version_comment")),
        "flavor": dialect.flavor,
        "read_only": _flag(v.get("read_only")),
        "log_bin": _flag(v.get("log_bin")),
        "log_slave_updates": _flag(v.get(dialect.log_replica_updates_var)),
        "binlog_format": _text(v.get("binlog_format")),
        "binlog_row_image": _text(v.get("binlog_row_image")),
    }
    if dialect.flavor is Flavor.MARIADB:
        current = _text(v.get("gtid_current_pos"))
        slave = _text(v.get("gtid_slave_pos"))
        binlog = _text(v.get("gtid_binlog_pos"))
        strict = _flag(v.get("gtid_strict_mode"))
        fields |= {
            "gtid_current_pos": current,
            "gtid_slave_pos": slave,
            "gtid_binlog_pos": binlog,
            "gtid_mode": "ON" if strict or current or slave or binlog else "OFF",
        }
    else:
        fields |= {
            "server_uuid": _text(v.get("server_uuid")) or None,
            "super_read_only": _flag(v.get("super_read_only")),
            "gtid_mode": _text(v.get("gtid_mode")),
            "gtid_executed": _text(v.get("gtid_executed")).replace("\n", ""),
            "gtid_purged": _text(v.get("gtid_purged")).replace("\n", ""),
        }
    return fields


def _apply_optional(fields: dict[str, Any], name: str, value: str | None) -> None:
    if value is None or value == "":
        return
    if name == "replication_lag":
        try:
            fields["replication_lag_seconds"] = float(value)
        except ValueError:
            return
    elif name == "promotion_rule":
        try:
            fields["promotion_rule"] = PromotionRule(value.strip().lower())
        except ValueError:
            return
    elif name == "semi_sync_priority":  # DetectSemiSyncEnforcedQuery: a number, 0 = asynchronous
        try:
            fields["semi_sync_priority"] = max(0, int(float(value.strip())))
        except ValueError:
            return
    else:
        fields[name] = value


async def _run_optional(
    conn: MySQLConnection, queries: list[tuple[str, str]], answers: list[list[Row] | MySQLError]
) -> dict[str, Any]:
    """Results of the optional queries; those the batch never reached (a previous optional query
    failed and the server stopped there) are retried one by one."""
    fields: dict[str, Any] = {}
    for i, (name, sql) in enumerate(queries):
        answer = answers[i] if i < len(answers) else (await conn.fetch_many([sql]))[0]
        if isinstance(answer, MySQLError):
            continue
        if name == _HEARTBEATS:
            fields[_HEARTBEATS] = answer[0] if answer else None
            continue
        _apply_optional(fields, name, _first_value(answer))
    return fields


async def _probe_on(
    conn: MySQLConnection, key: InstanceKey, settings: ProbeSettings
) -> tuple[dict[str, Any], MySQLError | None, bool]:
    """Run the batch. Returns (snapshot fields, error, first_answered)."""
    dialect = conn.dialect
    core = _core_statements(dialect, settings)
    optional = _optional_queries(settings)
    if dialect.heartbeat_query:
        optional.insert(0, (_HEARTBEATS, dialect.heartbeat_query))
    answers = await conn.fetch_many(core + [sql for _, sql in optional])

    first = answers[0] if answers else MySQLError(None, "empty answer to the variables query")
    if isinstance(first, MySQLError) or not first:
        err = first if isinstance(first, MySQLError) else MySQLError(None, "variables query returned no row")
        return {}, err, False
    fields = _identity(key, dialect, first[0])

    core_answers = answers[: len(core)]
    failed = next((a for a in core_answers if isinstance(a, MySQLError)), None)
    if failed is not None or len(core_answers) < len(core):
        return fields, failed or MySQLError(None, "probe batch ended early"), True

    rows = [a for a in core_answers if not isinstance(a, MySQLError)]
    it = iter(rows[1:])
    status = _name_value(next(it))
    variables = dict(first[0]) if dialect.is_mariadb else _name_value(next(it))
    binlog = next(it)
    replica_rows = next(it)
    hosts = next(it)

    fields["uptime_seconds"] = int(status["uptime"]) if status.get("uptime") is not None else None
    fields["semi_sync"] = SemiSyncState(**normalize_semi_sync(variables, status))
    if binlog:
        fields["binlog_file"] = _text(binlog[0].get("File"))
        fields["binlog_pos"] = int(binlog[0].get("Position") or 0)
    extra = await _run_optional(conn, optional, answers[len(core) :])
    heartbeats = extra.pop(_HEARTBEATS, None)
    replication = normalize_replication_row(replica_rows[0] if replica_rows else None)
    replication = normalize_heartbeats(replication, status, heartbeats)
    fields["replication"] = replication
    if replication is not None and replication.seconds_behind_master is not None:
        fields["replication_lag_seconds"] = float(replication.seconds_behind_master)
    if settings.discover_by_show_slave_hosts:
        fields["replicas"] = normalize_replica_hosts(hosts)
    else:
        fields["replicas"] = normalize_processlist_hosts(hosts, key.port)
    fields |= extra
    return fields, None, True


async def probe(
    key: InstanceKey,
    creds: Credentials,
    settings: ProbeSettings | None = None,
    *,
    pool: ConnectionPool | None = None,
    prober: str = "",
) -> InstanceSnapshot:
    """Probe `key` and return its snapshot. Never raises for a server problem: an instance that cannot
    be read yields an unreachable (or partial) snapshot. Costs at most connect_timeout + read_timeout."""
    settings = settings or ProbeSettings()
    pool = default_pool(settings) if pool is None else pool
    probed_at = utcnow()
    started = time.perf_counter()
    secret = creds.password.get_secret_value()
    fields: dict[str, Any] = {}
    first_answered = False
    error: MySQLError | None = None
    try:
        async with asyncio.timeout(settings.connect_timeout + settings.read_timeout):
            # A pooled connection the server dropped while idle (restart, KILL, wait_timeout) fails at
            # once with 2006/2013: that says nothing about the server, so the pool runs the (read-only)
            # probe once more on a fresh connection instead of reporting a false "unreachable".
            fields, error, first_answered = await pool.run(
                key, creds, lambda conn: _probe_on(conn, key, settings), idempotent=True
            )
    except Exception as exc:  # noqa: BLE001 - every failure becomes an unreachable snapshot
        error = translate(exc, secret=secret)
    latency_ms = (time.perf_counter() - started) * 1000.0
    # DataCenterPattern & co. on the hostname, overridden by what the Detect...Query answered.
    places = placement(
        key.host,
        data_center_pattern=settings.data_center_pattern,
        region_pattern=settings.region_pattern,
        physical_environment_pattern=settings.physical_environment_pattern,
        detected={name: str(fields.get(name) or "") for name in _PLACES},
    )
    fields |= places
    if error is None and fields.get("replication") is None and settings.cluster_name_to_alias:
        # A top master names its cluster (`host:port`): ClusterNameToAlias, unless the query answered.
        detected = str(fields.get("cluster_alias") or "")
        alias = cluster_alias(str(key), detected, settings.cluster_name_to_alias)
        if alias != str(key):
            fields["cluster_alias"] = alias
    if error is None:
        return InstanceSnapshot(
            key=key, probed_at=probed_at, reachable=True, latency_ms=latency_ms, prober=prober, **fields
        )
    if first_answered:
        return InstanceSnapshot(
            key=key,
            probed_at=probed_at,
            reachable=False,
            partial=True,
            error=error.message,
            error_code=error.code,
            latency_ms=latency_ms,
            prober=prober,
            **fields,
        )
    down = InstanceSnapshot.unreachable(
        key, probed_at, error.message, code=error.code, latency_ms=latency_ms, prober=prober
    )
    return down.model_copy(update=places) if places else down


def require_reachable(snapshot: InstanceSnapshot) -> InstanceSnapshot:
    """For seeds and CLI commands: turn an unreachable snapshot into a one-line ProbeError."""
    if snapshot.reachable:
        return snapshot
    code = f" [{snapshot.error_code}]" if snapshot.error_code is not None else ""
    raise ProbeError(f"cannot probe {snapshot.key}{code}: {snapshot.error}", code=snapshot.error_code)
