"""Compact builders for candidate-choice tests: one call per replica, sensible MariaDB defaults.

`r(7, pos="0-1-100")` is 127.0.0.1:23307, a healthy ROW/GTID MariaDB 10.11 replica of the failed
master 127.0.0.1:23306 in dc1 that has applied `0-1-100`. Override only what the case is about.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from libs.models import (
    Flavor,
    InstanceKey,
    InstanceSnapshot,
    IOThreadState,
    PromotionRule,
    ReplicationStatus,
)
from libs.topology.view import ClusterView, InstanceState

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MASTER = InstanceKey(host="127.0.0.1", port=23306)


def k(n: int) -> InstanceKey:
    """Port shorthand: k(7) is 127.0.0.1:23307."""
    return InstanceKey(host="127.0.0.1", port=23300 + n)


def _version(flavor: Flavor, version: str) -> str:
    return f"{version}.2-MariaDB-log" if flavor is Flavor.MARIADB else f"{version}.40-log"


def master(
    *,
    dc: str = "dc1",
    region: str = "",
    fmt: str = "ROW",
    version: str = "10.11",
    flavor: Flavor = Flavor.MARIADB,
    **extra: Any,
) -> InstanceState:
    """The failed master: unreachable now, last seen 30 s ago. `extra`: more snapshot fields (its GTID
    positions and server_uuid, for errant-transaction cases)."""
    seen = InstanceSnapshot(
        key=MASTER,
        probed_at=NOW - timedelta(seconds=30),
        reachable=True,
        server_id=1,
        flavor=flavor,
        version=_version(flavor, version),
        log_bin=True,
        binlog_format=fmt,
        data_center=dc,
        region=region,
        **extra,
    )
    probe = InstanceSnapshot.unreachable(MASTER, NOW - timedelta(seconds=1), "connection refused")
    return InstanceState(key=MASTER, last_probe=probe, last_seen=seen)


def r(
    n: int,
    *,
    pos: str = "0-1-100",
    io_pos: str | None = None,
    flavor: Flavor = Flavor.MARIADB,
    version: str = "10.11",
    log_bin: bool = True,
    lsu: bool = True,
    fmt: str = "ROW",
    dc: str = "dc1",
    region: str = "",
    rule: PromotionRule = PromotionRule.NEUTRAL,
    delay: int = 0,
    lag: float | None = 0.0,
    applied: bool = True,
    reachable: bool = True,
    age: float = 1.0,
    downtimed: bool = False,
    sql_running: bool = True,
    sql_errno: int = 0,
    sql_error: str = "",
    io_errno: int = 0,
    io_error: str = "",
    exec_pos: int = 5000,
    read_pos: int | None = None,
    **extra: Any,
) -> InstanceState:
    """One direct replica of MASTER. `pos` is the executed GTID position in the replica's flavor
    (MariaDB gtid_slave_pos, MySQL gtid_executed), `io_pos` what it received (MariaDB Gtid_IO_Pos,
    MySQL Retrieved_Gtid_Set); `applied=False` leaves 100 bytes of relay log (`read_pos` sets the
    read position outright). `io_errno`/`io_error`, `sql_errno`/`sql_error`: the last errors."""
    replication = ReplicationStatus(
        master=MASTER,
        master_server_id=1,
        io_state=IOThreadState.CONNECTING,
        sql_running=sql_running,
        last_io_errno=io_errno,
        last_io_error=io_error,
        last_sql_errno=sql_errno,
        last_sql_error=sql_error,
        read_master_log_file="mysql-bin.000003",
        read_master_log_pos=read_pos if read_pos is not None else exec_pos + (0 if applied else 100),
        relay_master_log_file="mysql-bin.000003",
        exec_master_log_pos=exec_pos,
        sql_delay=delay,
        using_gtid="Slave_Pos" if flavor is Flavor.MARIADB else "Yes",
        gtid_io_pos=(io_pos or pos) if flavor is Flavor.MARIADB else "",
        retrieved_gtid_set=(io_pos or "") if flavor is Flavor.MYSQL else "",
        executed_gtid_set=pos if flavor is Flavor.MYSQL else "",
    )
    fields: dict[str, Any] = {
        "key": k(n),
        "probed_at": NOW - timedelta(seconds=age),
        "reachable": True,
        "server_id": 100 + n,
        "flavor": flavor,
        "version": _version(flavor, version),
        "log_bin": log_bin,
        "log_slave_updates": lsu,
        "binlog_format": fmt,
        "gtid_slave_pos": pos if flavor is Flavor.MARIADB else "",
        "gtid_current_pos": pos if flavor is Flavor.MARIADB else "",
        "gtid_executed": pos if flavor is Flavor.MYSQL else "",
        "replication": replication,
        "replication_lag_seconds": lag,
        "data_center": dc,
        "region": region,
        "promotion_rule": rule,
        "read_only": True,
    }
    fields.update(extra)
    seen = InstanceSnapshot(**fields)
    if reachable:
        return InstanceState(key=seen.key, last_probe=seen, last_seen=seen, downtimed=downtimed)
    probe = InstanceSnapshot.unreachable(seen.key, NOW - timedelta(seconds=1), "connection refused")
    seen = seen.model_copy(update={"probed_at": NOW - timedelta(seconds=20)})
    return InstanceState(key=seen.key, last_probe=probe, last_seen=seen, downtimed=downtimed)


def cluster(*replicas: InstanceState, failed: InstanceState | None = None) -> ClusterView:
    """The failed master (default: `master()`) and its replicas as one cluster view."""
    top = failed if failed is not None else master()
    return ClusterView(name=str(MASTER), alias="test", instances=(top, *replicas))
