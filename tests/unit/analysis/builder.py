"""Expand a golden case's compact `cluster.json` into instance states, and findings into comparable dicts.

The format (every field optional unless noted; see cases/README.md):

    {"flavor": "mariadb", "params": {"stale_after": 6, ...},
     "instances": {"m": {"reachable": false, "error": "connection refused"},
                   "r1": {"master": "m", "io": "Connecting", "errno": 2003}}}

Instance keys use `InstanceKey.parse` ("m" is m:3306). Times are relative to a fixed `now`: `age` is
how old the latest probe is (default 1 s); an unreachable instance also gets a last successful probe
`seen_age` seconds old (default age + 1) built from the same fields, unless `never_seen` is true.
A replica with `heartbeat_period` > 0 counts heartbeats; `silent_for` says how long, up to its latest
probe, it has received nothing from its master (feeds `AnalysisHistory.received_since`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from libs.models import (
    Flavor,
    InstanceKey,
    InstanceSnapshot,
    IOThreadState,
    ReplicationStatus,
    SemiSyncState,
)
from libs.topology.analysis import AnalysisHistory, AnalysisParams, Finding
from libs.topology.context import CoordinatesSeen, ReceivedSeen
from libs.topology.view import InstanceState

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
_VERSIONS = {Flavor.MARIADB: "10.11.6-MariaDB-log", Flavor.MYSQL: "8.0.36"}
_USING_GTID = {Flavor.MARIADB: "Slave_Pos", Flavor.MYSQL: "Yes"}
_KNOWN = {
    "reachable", "error", "error_code", "partial", "age", "seen_age", "never_seen", "master", "io", "sql",
    "errno", "io_error", "sql_errno", "sql_error", "lag", "sql_delay", "using_gtid", "flavor", "server_id",
    "server_uuid", "version", "log_bin", "log_slave_updates", "binlog_format", "read_only", "gtid_mode",
    "gtid", "gtid_binlog_pos", "gtid_current_pos", "gtid_executed", "semi_sync", "binlog",
    "binlog_unchanged_for", "downtimed", "alias", "promotion_rule", "heartbeat_period",
    "received_heartbeats", "silent_for",
}  # fmt: skip


def _uuid(server_id: int) -> str:
    return f"00000000-0000-0000-0000-{server_id:012d}"


def _snapshot(
    key: InstanceKey, spec: dict[str, Any], flavor: Flavor, server_id: int, at: datetime
) -> InstanceSnapshot:
    replication = None
    if spec.get("master"):
        io = IOThreadState(spec.get("io", "Yes"))
        sql = bool(spec.get("sql", True))
        default_lag = 0 if io is IOThreadState.YES and sql else None
        replication = ReplicationStatus(
            master=InstanceKey.parse(spec["master"]),
            io_state=io,
            sql_running=sql,
            last_io_errno=spec.get("errno", 0),
            last_io_error=spec.get("io_error", ""),
            last_sql_errno=spec.get("sql_errno", 0),
            last_sql_error=spec.get("sql_error", ""),
            seconds_behind_master=spec.get("lag", default_lag),
            sql_delay=spec.get("sql_delay", 0),
            using_gtid=spec.get("using_gtid", _USING_GTID[flavor]),
            heartbeat_period=float(spec.get("heartbeat_period", 0)),
            received_heartbeats=spec.get("received_heartbeats", 7 if spec.get("heartbeat_period") else None),
        )
        lag = spec.get("lag", default_lag)
    else:
        lag = None
    gtid = spec.get("gtid", "")
    binlog = spec.get("binlog", ["bin.000001", 4])
    return InstanceSnapshot(
        key=key,
        probed_at=at,
        reachable=True,
        server_id=server_id,
        server_uuid=spec.get("server_uuid", _uuid(server_id)),
        version=spec.get("version", _VERSIONS[flavor]),
        flavor=flavor,
        read_only=spec.get("read_only", replication is not None),
        log_bin=spec.get("log_bin", True),
        log_slave_updates=spec.get("log_slave_updates", True),
        binlog_format=spec.get("binlog_format", "ROW"),
        gtid_mode=spec.get("gtid_mode", "ON"),
        gtid_executed=spec.get("gtid_executed", gtid if flavor is Flavor.MYSQL else ""),
        gtid_binlog_pos=spec.get("gtid_binlog_pos", gtid if flavor is Flavor.MARIADB else ""),
        gtid_current_pos=spec.get("gtid_current_pos", gtid if flavor is Flavor.MARIADB else ""),
        binlog_file=binlog[0],
        binlog_pos=binlog[1],
        replication=replication,
        replication_lag_seconds=lag,
        semi_sync=SemiSyncState(**spec.get("semi_sync", {})),
        cluster_alias=spec.get("alias", ""),
        promotion_rule=spec.get("promotion_rule", "neutral"),
    )


def build_case(case: dict[str, Any]) -> tuple[list[InstanceState], AnalysisParams, AnalysisHistory]:
    """The states, params and history a `cluster.json` describes."""
    cluster_flavor = Flavor(case.get("flavor", "mariadb"))
    raw_params = dict(case.get("params", {}))
    if "stale_after" in raw_params:
        raw_params["stale_after"] = timedelta(seconds=raw_params["stale_after"])
    params = AnalysisParams(**raw_params)
    states: list[InstanceState] = []
    coordinates: dict[InstanceKey, CoordinatesSeen] = {}
    received: dict[InstanceKey, ReceivedSeen] = {}
    for index, (name, spec) in enumerate(case["instances"].items()):
        unknown = set(spec) - _KNOWN
        if unknown:
            raise ValueError(f"{name}: unknown fields {sorted(unknown)}")
        key = InstanceKey.parse(name)
        flavor = Flavor(spec.get("flavor", cluster_flavor))
        server_id = spec.get("server_id", index + 1)
        age = float(spec.get("age", 1))
        latest_at = NOW - timedelta(seconds=age)
        seen_at = NOW - timedelta(seconds=float(spec.get("seen_age", age + 1)))
        full = _snapshot(key, spec, flavor, server_id, latest_at)
        if spec.get("reachable", True):
            latest, last_seen = full, full
        else:
            latest = InstanceSnapshot.unreachable(
                key, latest_at, spec.get("error", "connection refused"), code=spec.get("error_code")
            )
            if spec.get("partial"):
                latest = latest.model_copy(update={"partial": True})
            last_seen = None if spec.get("never_seen") else full.model_copy(update={"probed_at": seen_at})
        states.append(
            InstanceState(
                key=key, last_probe=latest, last_seen=last_seen, downtimed=spec.get("downtimed", False)
            )
        )
        if "binlog_unchanged_for" in spec:
            since = NOW - timedelta(seconds=float(spec["binlog_unchanged_for"]))
            coordinates[key] = CoordinatesSeen(full.binlog_file, full.binlog_pos, since)
        if "silent_for" in spec:
            mark = full.replication.received_mark if full.replication is not None else None
            if mark is None:
                raise ValueError(f"{name}: silent_for needs a replica with heartbeat_period > 0")
            received[key] = ReceivedSeen(mark, latest_at - timedelta(seconds=float(spec["silent_for"])))
    return states, params, AnalysisHistory(binlog_since=coordinates, received_since=received)


def project(finding: Finding) -> dict[str, Any]:
    """A finding as plain JSON values, in the vocabulary `expected.json` uses."""
    data = finding.model_dump(mode="json")
    data["instance"] = str(finding.instance)
    data["master"] = str(finding.master) if finding.master else None
    data["replicas"] = [str(r) for r in finding.replicas]
    data["errant_gtids"] = {str(e.replica): e.gtids for e in finding.errant_gtids}
    return data


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Keep only the keys the expectation names (plus code/instance), so cases state what matters."""
    keys = ["code", "instance", *[k for k in expected if k not in ("code", "instance", "reason_contains")]]
    shown = {k: actual.get(k, "<missing>") for k in keys}
    if "reason_contains" in expected:
        needle = expected["reason_contains"]
        shown["reason_contains"] = needle if needle in actual["reason"] else actual["reason"]
    return shown
