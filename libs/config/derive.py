"""What the libraries need, derived from `Settings` in one place.

`libs.mysql` knows nothing of orchestrator's key names: it takes `ProbeSettings` and `Credentials`.
These functions are the single mapping between the two, so every service probes and connects the same
way for the same config.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from libs.bus.connection import NatsSecurity
from libs.config.settings import Settings
from libs.errors import ConfigError
from libs.mysql.connection import Credentials, MySQLTLS, ProbeSettings
from libs.tls import TLSFileError
from libs.topology.context import AnalysisParams

log = logging.getLogger(__name__)


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
        detect_physical_environment_query=settings.DetectPhysicalEnvironmentQuery or None,
        detect_semi_sync_enforced_query=settings.DetectSemiSyncEnforcedQuery or None,
        data_center_pattern=settings.DataCenterPattern or None,
        region_pattern=settings.RegionPattern or None,
        physical_environment_pattern=settings.PhysicalEnvironmentPattern or None,
        cluster_name_to_alias=dict(settings.ClusterNameToAlias),
    )


def topology_credentials(settings: Settings) -> Credentials:
    """The user Baton probes and operates with (MySQLTopologyUser/Password or its credentials file), and
    the TLS its connections use."""
    if not settings.MySQLTopologyUser:
        raise ConfigError("MySQLTopologyUser: not set (nor in MySQLTopologyCredentialsConfigFile)")
    tls = _mysql_tls(  # TLS of every topology connection: MySQLTopologyUseMutualTLS, MySQLTopologySSL*
        "MySQLTopology",
        on=settings.MySQLTopologyUseMutualTLS,
        ca=settings.MySQLTopologySSLCAFile,
        cert=settings.MySQLTopologySSLCertFile,
        key=settings.MySQLTopologySSLPrivateKeyFile,
        skip_verify=settings.MySQLTopologySSLSkipVerify,
        keys=_TOPOLOGY_TLS_KEYS,
    )
    return Credentials(user=settings.MySQLTopologyUser, password=settings.MySQLTopologyPassword, tls=tls)


_TOPOLOGY_TLS_KEYS = {
    "ca_file": "MySQLTopologySSLCAFile",
    "cert_file/key_file": "MySQLTopologySSLCertFile/MySQLTopologySSLPrivateKeyFile",
}
_READ_MODEL_TLS_KEYS = {
    "ca_file": "MySQLOrchestratorSSLCAFile",
    "cert_file/key_file": "MySQLOrchestratorSSLCertFile/MySQLOrchestratorSSLPrivateKeyFile",
}


_WARNED_TLS_OFF: set[str] = set()


def _mysql_tls(
    prefix: str, *, on: bool, ca: str, cert: str, key: str, skip_verify: bool, keys: dict[str, str]
) -> MySQLTLS | None:
    """orchestrator's rule: TLS only when `<prefix>UseMutualTLS` is true; then the CA verifies the
    server (unless SkipVerify) and the cert/key pair, when both are set, is presented. The files are
    loaded here, so a missing or unreadable one fails at start naming its key."""
    if not on:
        if (ca or cert or key) and prefix not in _WARNED_TLS_OFF:
            _WARNED_TLS_OFF.add(prefix)  # once per process: this runs at every connect path's start
            log.warning(
                "%sSSL* files are set but %sUseMutualTLS is false: those connections do not use TLS",
                prefix, prefix,
            )  # fmt: skip
        return None
    if bool(cert) != bool(key):
        missing = f"{prefix}SSLPrivateKeyFile" if cert else f"{prefix}SSLCertFile"
        raise ConfigError(f"{missing}: needed too when the other of the client certificate pair is set")
    tls = MySQLTLS(ca_file=ca, cert_file=cert, key_file=key, skip_verify=skip_verify)
    try:
        tls.context()
    except TLSFileError as exc:
        raise ConfigError(f"{keys.get(exc.what, prefix + 'SSL*')}: {exc}") from None
    return tls


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


def read_model_tls(settings: Settings) -> MySQLTLS | None:
    """TLS of a MySQL read model (MySQLOrchestratorUseMutualTLS and the MySQLOrchestratorSSL* keys)."""
    return _mysql_tls(
        "MySQLOrchestrator",
        on=settings.MySQLOrchestratorUseMutualTLS,
        ca=settings.MySQLOrchestratorSSLCAFile,
        cert=settings.MySQLOrchestratorSSLCertFile,
        key=settings.MySQLOrchestratorSSLPrivateKeyFile,
        skip_verify=settings.MySQLOrchestratorSSLSkipVerify,
        keys=_READ_MODEL_TLS_KEYS,
    )


def nats_security(settings: Settings) -> NatsSecurity:
    """TLS and credentials of every NATS connection (the BatonNats* keys), checked so that a bad file or
    an ambiguous choice fails at start naming its key."""
    ways = [
        name
        for name, used in (
            ("BatonNatsUser", bool(settings.BatonNatsUser)),
            ("BatonNatsToken", bool(settings.BatonNatsToken.get_secret_value())),
            ("BatonNatsCredsFile", bool(settings.BatonNatsCredsFile)),
            ("BatonNatsNKeySeedFile", bool(settings.BatonNatsNKeySeedFile)),
        )
        if used
    ]
    if len(ways) > 1:
        raise ConfigError(f"{ways[1]}: only one NATS authentication may be set (also set: {ways[0]})")
    if settings.BatonNatsPassword.get_secret_value() and not settings.BatonNatsUser:
        raise ConfigError("BatonNatsPassword: set, but BatonNatsUser is empty")
    if bool(settings.BatonNatsCertFile) != bool(settings.BatonNatsKeyFile):
        missing = "BatonNatsKeyFile" if settings.BatonNatsCertFile else "BatonNatsCertFile"
        raise ConfigError(f"{missing}: needed too when the other of the client certificate pair is set")
    for key in ("BatonNatsCredsFile", "BatonNatsNKeySeedFile"):
        path = getattr(settings, key)
        if path and not Path(path).is_file():
            raise ConfigError(f"{key}: {path!r} is not a readable file")
    security = NatsSecurity(
        ca_file=settings.BatonNatsCAFile,
        cert_file=settings.BatonNatsCertFile,
        key_file=settings.BatonNatsKeyFile,
        user=settings.BatonNatsUser,
        password=settings.BatonNatsPassword,
        token=settings.BatonNatsToken,
        creds_file=settings.BatonNatsCredsFile,
        nkey_seed_file=settings.BatonNatsNKeySeedFile,
    )
    if security.tls:
        try:
            security.tls_context()
        except TLSFileError as exc:
            key = "BatonNatsCAFile" if exc.what == "ca_file" else "BatonNatsCertFile/BatonNatsKeyFile"
            raise ConfigError(f"{key}: {exc}") from None
    return security
