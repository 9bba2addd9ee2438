"""What the libraries need, derived from `Settings` in one place.

`libs.mysql` knows nothing of orchestrator's key names: it takes `ProbeSettings` and `Credentials`.
These functions are the single mapping between the two, so every service probes and connects the same
way for the same config.
"""

from __future__ import annotations

from libs.config.settings import Settings
from libs.errors import ConfigError
from libs.mysql.connection import Credentials, ProbeSettings


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
    """The user replicas connect to their master with after a repoint (MySQLReplicationUser/Password)."""
    if not settings.MySQLReplicationUser:
        raise ConfigError("MySQLReplicationUser: not set (nor in MySQLReplicationCredentialsConfigFile)")
    return Credentials(user=settings.MySQLReplicationUser, password=settings.MySQLReplicationPassword)
