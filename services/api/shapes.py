"""orchestrator's JSON shapes, built from Baton's models (reference §1e, field names as on the wire).

Pure functions: `now`, the poll interval and the per-instance extras (downtime, registered promotion
rule) are passed in. Fields orchestrator has and Baton has no notion of get orchestrator's neutral
value (empty string, false, 0), so clients that read them keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from libs.models import Flavor, InstanceKey, PromotionRule
from libs.models.instance import IOThreadState
from libs.topology.analysis import Finding, describe
from libs.topology.codes import Analysis
from libs.topology.filters import cluster_matches
from libs.topology.view import ClusterView, InstanceState

NO_KEY: dict[str, Any] = {"Hostname": "", "Port": 0}


def key_json(key: InstanceKey | None) -> dict[str, Any]:
    return NO_KEY if key is None else {"Hostname": key.host, "Port": key.port}


def _nullint(value: float | int | None) -> dict[str, Any]:
    return {"Int64": int(value) if value is not None else 0, "Valid": value is not None}


def _coords(file: str, pos: int, kind: int = 0) -> dict[str, Any]:
    return {"LogFile": file, "LogPos": pos, "Type": kind}


@dataclass(frozen=True)
class Extras:
    """What the view does not hold: downtime and run-time promotion rules, from KV."""

    downtime_reason: str = ""
    downtime_owner: str = ""
    downtime_start: datetime | None = None
    downtime_end: datetime | None = None
    promotion_rule: PromotionRule | None = None
    problems: tuple[str, ...] = field(default=())
    gtid_errant: str = ""  # libs/topology/errant_view.py (which-gtid-errant)


def thread_state(running: bool | None, io: IOThreadState | None = None) -> int:
    """orchestrator's ReplicationThreadState: -1 none, 0 stopped, 1 running, 2 other (connecting)."""
    if running is None:
        return -1
    if io is IOThreadState.CONNECTING:
        return 2
    return 1 if running else 0


def matches_filters(filters: Sequence[str], name: str, alias: str) -> bool:
    """orchestrator's cluster filters (the recovery's own matcher, so the API never disagrees with it)."""
    return cluster_matches(filters, name, alias)


def problems_of(
    state: InstanceState, now: datetime, poll: timedelta, stale: timedelta, lag_limit: float
) -> list[str]:
    """orchestrator's Instance.Problems[] (the subset Baton can tell from a snapshot)."""
    out: list[str] = []
    if not state.is_valid(now, stale):
        out.append("last_check_invalid" if state.last_probe.reachable else "unreachable")
    if now - state.last_probe.probed_at > poll * 5:
        out.append("not_recently_checked")
    repl = state.info.replication
    if repl is not None:
        if not repl.replicating:
            out.append("not_replicating")
        lag = state.info.replication_lag_seconds
        if lag is not None and lag > lag_limit:
            out.append("replication_lag")
    return out


def instance_json(
    state: InstanceState,
    view: ClusterView,
    *,
    now: datetime,
    poll: timedelta,
    stale: timedelta,
    extras: Extras = Extras(),
) -> dict[str, Any]:
    """orchestrator's Instance."""
    info = state.info
    repl = info.replication
    valid = state.is_valid(now, stale)
    mariadb = info.flavor is Flavor.MARIADB
    replicating_with_gtid = repl is not None and repl.using_gtid not in ("", "No")
    sql_running = repl.sql_running if repl else False
    io_running = repl.io_running if repl else False
    seen = state.last_seen.probed_at if state.last_seen else None
    since_seen = (now - seen).total_seconds() if seen else None
    age = now - state.last_probe.probed_at
    rule = extras.promotion_rule or info.promotion_rule
    downtimed = extras.downtime_end is not None
    lag = info.replication_lag_seconds
    return {
        "Key": key_json(state.key),
        "InstanceAlias": "",
        "Uptime": info.uptime_seconds or 0,
        "ServerID": info.server_id or 0,
        "ServerUUID": info.server_uuid or "",
        "Version": info.version,
        "VersionComment": info.version_comment,
        "FlavorName": "MariaDB" if mariadb else ("MySQL" if info.flavor is Flavor.MYSQL else ""),
        "ReadOnly": info.read_only,
        "Binlog_format": info.binlog_format,
        "BinlogRowImage": info.binlog_row_image,
        "LogBinEnabled": info.log_bin,
        "LogSlaveUpdatesEnabled": info.log_slave_updates,
        "LogReplicationUpdatesEnabled": info.log_slave_updates,
        "SelfBinlogCoordinates": _coords(info.binlog_file, info.binlog_pos),
        "MasterKey": key_json(info.master_key),
        "MasterUUID": (repl.master_uuid or "") if repl else "",
        "AncestryUUID": "",
        "IsDetachedMaster": False,
        "Slave_SQL_Running": sql_running,
        "ReplicationSQLThreadRuning": sql_running,
        "Slave_IO_Running": io_running,
        "ReplicationIOThreadRuning": io_running,
        "ReplicationSQLThreadState": thread_state(sql_running if repl else None),
        "ReplicationIOThreadState": thread_state(
            io_running if repl else None, repl.io_state if repl else None
        ),
        "HasReplicationFilters": False,
        "GTIDMode": info.gtid_mode,
        "SupportsOracleGTID": not mariadb and info.gtid_mode.upper() == "ON",
        "UsingOracleGTID": not mariadb and replicating_with_gtid,
        "UsingMariaDBGTID": mariadb and replicating_with_gtid,
        "UsingPseudoGTID": False,
        "ReadBinlogCoordinates": _coords(repl.read_master_log_file, repl.read_master_log_pos)
        if repl
        else _coords("", 0),
        "ExecBinlogCoordinates": _coords(repl.relay_master_log_file, repl.exec_master_log_pos)
        if repl
        else _coords("", 0),
        "IsDetached": False,
        "RelaylogCoordinates": _coords(repl.relay_log_file, repl.relay_log_pos, 1)
        if repl
        else _coords("", 0, 1),
        "LastSQLError": (repl.last_sql_error if repl else ""),
        "LastIOError": (repl.last_io_error if repl else ""),
        "SecondsBehindMaster": _nullint(repl.seconds_behind_master if repl else None),
        "SQLDelay": repl.sql_delay if repl else 0,
        "ExecutedGtidSet": info.gtid_position,
        "GtidPurged": info.gtid_purged,
        "GtidErrant": extras.gtid_errant,
        "SlaveLagSeconds": _nullint(lag if repl else 0),
        "ReplicationLagSeconds": _nullint(lag if repl else 0),
        "SlaveHosts": [key_json(k) for k in info.replicas],
        "Replicas": [key_json(k) for k in info.replicas],
        "ClusterName": view.name,
        "SuggestedClusterAlias": view.alias,
        "DataCenter": info.data_center,
        "Region": info.region,
        "PhysicalEnvironment": info.physical_environment,
        "ReplicationDepth": view.depth_of(state.key),
        "IsCoMaster": False,
        "HasReplicationCredentials": repl is not None,
        "ReplicationCredentialsAvailable": False,
        "SemiSyncAvailable": True,
        "SemiSyncPriority": 0,
        "SemiSyncMasterEnabled": info.semi_sync.master_enabled,
        "SemiSyncReplicaEnabled": info.semi_sync.replica_enabled,
        "SemiSyncMasterTimeout": 0,
        "SemiSyncMasterWaitForReplicaCount": info.semi_sync.master_wait_for_replica_count,
        "SemiSyncMasterStatus": info.semi_sync.master_status,
        "SemiSyncMasterClients": info.semi_sync.master_clients,
        "SemiSyncReplicaStatus": info.semi_sync.replica_status,
        "LastSeenTimestamp": seen.isoformat() if seen else "",
        "IsLastCheckValid": valid,
        "IsUpToDate": valid and age <= poll,
        "IsRecentlyChecked": age <= poll * 5,
        "SecondsSinceLastSeen": _nullint(since_seen),
        "CountMySQLSnapshots": 0,
        "IsCandidate": rule in (PromotionRule.MUST, PromotionRule.PREFER),
        "PromotionRule": rule.value,
        "IsDowntimed": downtimed,
        "DowntimeReason": extras.downtime_reason,
        "DowntimeOwner": extras.downtime_owner,
        "DowntimeEndTimestamp": extras.downtime_end.isoformat() if extras.downtime_end else "",
        "ElapsedDowntime": int((now - extras.downtime_start).total_seconds() * 1e9)
        if extras.downtime_start
        else 0,
        "UnresolvedHostname": "",
        "AllowTLS": False,
        "Problems": list(extras.problems),
        "LastDiscoveryLatency": int(state.last_probe.latency_ms * 1e6),
        "ReplicationGroupName": "",
        "ReplicationGroupIsSinglePrimary": False,
        "ReplicationGroupMemberState": "",
        "ReplicationGroupMemberRole": "",
        "ReplicationGroupMembers": [],
        "ReplicationGroupPrimaryInstanceKey": NO_KEY,
        "BatonLastProbeError": state.last_probe.error or "",
        "BatonLastProbeAt": state.last_probe.probed_at.isoformat(),
    }


def cluster_info_json(
    view: ClusterView, master_filters: Sequence[str], im_filters: Sequence[str]
) -> dict[str, Any]:
    """orchestrator's ClusterInfo."""
    lags = [s.info.replication_lag_seconds or 0 for s in view.instances if s.info.replication is not None]
    return {
        "ClusterName": view.name,
        "ClusterAlias": view.alias,
        "ClusterDomain": "",
        "CountInstances": len(view.instances),
        "HeuristicLag": int(max(lags, default=0)),
        "HasAutomatedMasterRecovery": matches_filters(master_filters, view.name, view.alias),
        "HasAutomatedIntermediateMasterRecovery": matches_filters(im_filters, view.name, view.alias),
    }


def analysis_json(
    finding: Finding, view: ClusterView, cluster_info: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """orchestrator's ReplicationAnalysis entry for one finding."""
    state = view.get(finding.instance)
    info = state.info if state else None
    replicas = [view.get(k) for k in finding.replicas]
    logging = [r.info for r in replicas if r is not None and r.info.log_bin and r.info.log_slave_updates]
    formats = [i.binlog_format.upper() for i in logging]
    structure = [w.value for w in finding.structure_warnings]
    return {
        "AnalyzedInstanceKey": key_json(finding.instance),
        "AnalyzedInstanceMasterKey": key_json(finding.master),
        "ClusterDetails": cluster_info,
        "AnalyzedInstanceDataCenter": info.data_center if info else "",
        "AnalyzedInstanceRegion": info.region if info else "",
        "AnalyzedInstancePhysicalEnvironment": info.physical_environment if info else "",
        "AnalyzedInstanceBinlogCoordinates": _coords(info.binlog_file, info.binlog_pos)
        if info
        else _coords("", 0),
        "IsMaster": finding.is_master,
        "IsReplicationGroupMember": False,
        "IsCoMaster": finding.is_co_master,
        "LastCheckValid": finding.reachable,
        "LastCheckPartialSuccess": bool(state and state.last_probe.partial),
        "CountReplicas": finding.replica_count,
        "CountValidReplicas": finding.valid_replicas,
        "CountValidReplicatingReplicas": finding.replicating_replicas,
        "CountReplicasFailingToConnectToMaster": finding.failing_to_connect_replicas,
        "CountDowntimedReplicas": finding.downtimed_replicas,
        "ReplicationDepth": view.depth_of(finding.instance),
        "Replicas": [key_json(k) for k in finding.replicas],
        "SlaveHosts": [key_json(k) for k in finding.replicas],
        "IsFailingToConnectToMaster": finding.code
        is Analysis.FIRST_TIER_REPLICA_FAILING_TO_CONNECT_TO_MASTER,
        "Analysis": finding.code.value,
        "Description": describe(finding.code),
        "StructureAnalysis": structure,
        "IsDowntimed": finding.downtimed,
        "IsReplicasDowntimed": finding.replicas_downtimed,
        "DowntimeEndTimestamp": "",
        "DowntimeRemainingSeconds": 0,
        "IsBinlogServer": False,
        "PseudoGTIDImmediateTopology": False,
        "OracleGTIDImmediateTopology": bool(
            info and info.flavor is Flavor.MYSQL and info.gtid_mode.upper() == "ON"
        ),
        "MariaDBGTIDImmediateTopology": bool(info and info.flavor is Flavor.MARIADB),
        "BinlogServerImmediateTopology": False,
        "SemiSyncMasterEnabled": bool(info and info.semi_sync.master_enabled),
        "SemiSyncMasterStatus": bool(info and info.semi_sync.master_status),
        "SemiSyncMasterWaitForReplicaCount": info.semi_sync.master_wait_for_replica_count if info else 0,
        "SemiSyncMasterClients": info.semi_sync.master_clients if info else 0,
        "CountSemiSyncReplicasEnabled": sum(
            1 for r in replicas if r is not None and r.info.semi_sync.replica_enabled
        ),
        "CountLoggingReplicas": len(logging),
        "CountStatementBasedLoggingReplicas": formats.count("STATEMENT"),
        "CountMixedBasedLoggingReplicas": formats.count("MIXED"),
        "CountRowBasedLoggingReplicas": formats.count("ROW"),
        "CountDistinctMajorVersionsLoggingReplicas": len({i.major_version for i in logging}),
        "CountDelayedReplicas": finding.delayed_replicas,
        "CountLaggingReplicas": finding.lagging_replicas,
        "IsActionableRecovery": finding.actionable,
        "ProcessingNodeHostname": "",
        "ProcessingNodeToken": "",
        "CountAdditionalAgreeingNodes": 0,
        "StartActivePeriod": "",
        "SkippableDueToDowntime": finding.skippable,
        "GTIDMode": info.gtid_mode if info else "",
        "MinReplicaGTIDMode": "",
        "MaxReplicaGTIDMode": "",
        "MaxReplicaGTIDErrant": "; ".join(f"{e.replica}: {e.gtids}" for e in finding.errant_gtids),
        "CommandHint": "",
        "IsReadOnly": bool(info and info.read_only),
        "BatonReason": finding.reason,
        "BatonAnalyzedAt": now.isoformat(),
    }
