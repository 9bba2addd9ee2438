"""What the libraries need, derived from `Settings` in one place.

`libs.mysql` knows nothing of orchestrator's key names: it takes `ProbeSettings` and `Credentials`.
These functions are the single mapping between the two, so every service probes and connects the same
way for the same config.
"""

from __future__ import annotations

from datetime import timedelta

from libs.config.settings import Settings
from libs.errors import ConfigError
from libs.mysql.connection import Credentials, ProbeSettings
from libs.topology.context import AnalysisParams


def probe_settings(settings: Settings) -> ProbeSettings:
    """Probe timeouts and the operator's optional per-instance queries."""
    return ProbeSettings(
        connect_timeout=float(settings.MySQLConnectTimeoutSeconds),
        read_timeout=float(settings.MySQLDiscoveryReadTimeoutSeconds),
        discover_by_show_slave_hosts=settings.DiscoverByShowSlaveHosts,
        replication_lag_query=settings.ReplicationLagQuery or None,
        detect_data_center_query=settings.DetectDataCenterQuery or None,
        detect_region_query=settings.DetectRegionQuery or None,
        detect_cluster_alias_query=settings.DetectClusterAliasQuery or None,
        detect_promotion_rule_query=settings.DetectPromotionRuleQuery or None,
    )


def topology_credentials(settings: Settings) -> Credentials:
    """The user Baton probes and operates with (MySQLTopologyUser/Password or its credentials file)."""
    if not settings.MySQLTopologyUser:
        raise ConfigError("MySQLTopologyUser: not set (nor in MySQLTopologyCredentialsConfigFile)")
    return Credentials(user=settings.MySQLTopologyUser, password=settings.MySQLTopologyPassword)


def replication_credentials(settings: Settings) -> Credentials:
    """The user replicas connect to their master with after a repoint (MySQLReplicationUser/Password);
    the topology user when no replication user is configured."""
    if settings.MySQLReplicationUser:
        return Credentials(user=settings.MySQLReplicationUser, password=settings.MySQLReplicationPassword)
    return topology_credentials(settings)


def stale_after(settings: Settings) -> timedelta:
    """A latest probe older than two poll intervals plus the reasonable check time counts as
    unreachable: one late or lost probe is tolerated, two are not. One rule for every service, so the
    recovery's re-analysis and the API's replication-analysis agree with the analyzer."""
    return timedelta(seconds=2 * settings.InstancePollSeconds + settings.ReasonableInstanceCheckSeconds)


def analysis_params(settings: Settings) -> AnalysisParams:
    return AnalysisParams(
        stale_after=stale_after(settings),
        reasonable_replication_lag_seconds=float(settings.ReasonableReplicationLagSeconds),
        reasonable_locked_semi_sync_master_seconds=float(settings.locked_semi_sync_master_seconds),
        recover_non_writeable_master=settings.RecoverNonWriteableMaster,
        enforce_exact_semi_sync_replicas=settings.EnforceExactSemiSyncReplicas,
        heartbeat_periods_silent=float(settings.BatonHeartbeatPeriodsSilent),
    )
