"""Which code reads each config key, and the keys Baton accepts without using them.

Every key of `Settings` is in exactly one of these two tables, and `tests/unit/config/test_honesty.py`
keeps them true:

- `READERS[key]`: where the key takes effect, as `module:Qualified.name` (a function, method, class
  or module-level name). The test parses each reader and fails unless its code reads the key: an
  attribute `.Key`, the string `"Key"` (e.g. the hook kinds, whose values are their key names) or a
  `HookKind` member whose value is the key. A reader inside `libs.config` (a `derive` function, a
  `Settings` method) counts only when code outside `libs.config` calls it; the loader's
  credential-file table is applied to every load.
- `NOT_USED[key]`: why Baton takes the key but does nothing with it. The loader logs a WARNING for
  each of them that a config sets (`accepted but not used by Baton: <why>`), and the generated list
  (`reference.unused_markdown()`) is in `docs/architecture.md` ("Accepted, not used").

A new key therefore cannot be added without saying who reads it or warning that nothing does.
"""

from __future__ import annotations

READERS: dict[str, tuple[str, ...]] = {
    # -- topology: reaching and probing MySQL ------------------------------------------------------
    "MySQLTopologyUser": ("libs.config.derive:topology_credentials",),
    "MySQLTopologyPassword": ("libs.config.derive:topology_credentials",),
    "MySQLTopologyCredentialsConfigFile": ("libs.config.loader:_CREDENTIAL_FILES",),
    "MySQLTopologySSLPrivateKeyFile": ("libs.config.derive:topology_credentials",),
    "MySQLTopologySSLCertFile": ("libs.config.derive:topology_credentials",),
    "MySQLTopologySSLCAFile": ("libs.config.derive:topology_credentials",),
    "MySQLTopologySSLSkipVerify": ("libs.config.derive:topology_credentials",),
    "MySQLTopologyUseMutualTLS": ("libs.config.derive:topology_credentials",),
    "MySQLReplicationUser": ("libs.config.derive:replication_credentials",),
    "MySQLReplicationPassword": ("libs.config.derive:replication_credentials",),
    "MySQLReplicationCredentialsConfigFile": ("libs.config.loader:_CREDENTIAL_FILES",),
    "MySQLConnectTimeoutSeconds": (
        "libs.config.derive:probe_settings",
        "libs.recovery.options:failed_master_timeout",
    ),
    "MySQLDiscoveryReadTimeoutSeconds": ("libs.config.derive:probe_settings",),
    "MySQLTopologyReadTimeoutSeconds": ("services.recovery.wiring:build_collaborators",),
    "DefaultInstancePort": ("libs.cli.discovery:_key",),
    "InstancePollSeconds": (
        "libs.config.derive:stale_after",
        "services.prober.config:ProberConfig.from_settings",
    ),
    "ReasonableInstanceCheckSeconds": ("libs.config.derive:stale_after",),
    "ReasonableReplicationLagSeconds": (
        "libs.config.derive:analysis_params",
        "libs.recovery.options:execution_options",
    ),
    "ReasonableMaintenanceReplicationLagSeconds": ("libs.recovery.options:execution_options",),
    "ReasonableLockedSemiSyncMasterSeconds": (
        "libs.config.settings:Settings.locked_semi_sync_master_seconds",
    ),
    "UnseenInstanceForgetHours": ("services.prober.config:ProberConfig.from_settings",),
    "InstanceBulkOperationsWaitTimeoutSeconds": ("libs.recovery.options:execution_options",),
    "DiscoverByShowSlaveHosts": ("libs.config.derive:probe_settings",),
    "DiscoverySeeds": ("services.prober.config:ProberConfig.from_settings",),
    "DiscoveryIgnoreReplicaHostnameFilters": ("services.prober.config:ignore_filters",),
    "DiscoveryIgnoreMasterHostnameFilters": ("services.prober.config:ignore_filters",),
    "DiscoveryIgnoreHostnameFilters": ("services.prober.config:ignore_filters",),
    "HostnameResolveMethod": ("services.prober.config:ProberConfig.from_settings",),
    "MySQLHostnameResolveMethod": ("services.prober.config:ProberConfig.from_settings",),
    "ReplicationLagQuery": ("libs.config.derive:probe_settings",),
    "DetectClusterAliasQuery": ("libs.config.derive:probe_settings",),
    "ClusterNameToAlias": ("libs.config.derive:probe_settings",),
    "DetectDataCenterQuery": ("libs.config.derive:probe_settings",),
    "DetectRegionQuery": ("libs.config.derive:probe_settings",),
    "DetectPhysicalEnvironmentQuery": ("libs.config.derive:probe_settings",),
    "DetectPromotionRuleQuery": ("libs.config.derive:probe_settings",),
    "DetectSemiSyncEnforcedQuery": ("libs.config.derive:probe_settings",),
    "DataCenterPattern": ("libs.config.derive:probe_settings",),
    "RegionPattern": ("libs.config.derive:probe_settings",),
    "PhysicalEnvironmentPattern": ("libs.config.derive:probe_settings",),
    # -- HTTP API --------------------------------------------------------------------------------------
    "ListenAddress": ("services.api.app:listen_host", "services.api.serve:serve_with.serve"),
    "UseSSL": ("services.api.serve:https_options",),
    "SSLCertFile": ("services.api.serve:https_options",),
    "SSLPrivateKeyFile": ("services.api.serve:https_options",),
    "UseMutualTLS": ("services.api.serve:https_options",),
    "SSLCAFile": ("services.api.serve:https_options",),
    "URLPrefix": ("services.api.app:create_app",),
    "StatusEndpoint": ("services.api.app:create_app",),
    "ReadOnly": ("services.api.auth:admin",),
    "AuthenticationMethod": ("services.api.auth:Authenticator.__init__",),
    "HTTPAuthUser": ("services.api.auth:Authenticator._basic",),
    "HTTPAuthPassword": ("services.api.auth:Authenticator._basic",),
    "AuthUserHeader": ("services.api.auth:Authenticator.authenticate",),
    "PowerAuthUsers": ("services.api.auth:Authenticator._power",),
    "PowerAuthGroups": ("services.api.auth:Authenticator._power",),
    # -- the API's read model --------------------------------------------------------------------------
    "BackendDB": ("libs.config.settings:Settings.read_model_url",),
    "SQLite3DataFile": ("libs.config.settings:Settings.read_model_url",),
    "MySQLOrchestratorHost": ("libs.config.settings:Settings.read_model_url",),
    "MySQLOrchestratorPort": ("libs.config.settings:Settings.read_model_url",),
    "MySQLOrchestratorDatabase": ("libs.config.settings:Settings.read_model_url",),
    "MySQLOrchestratorUser": ("libs.config.settings:Settings.read_model_url",),
    "MySQLOrchestratorPassword": ("libs.config.settings:Settings.read_model_url",),
    "MySQLOrchestratorCredentialsConfigFile": ("libs.config.loader:_CREDENTIAL_FILES",),
    "MySQLOrchestratorReadTimeoutSeconds": ("services.api.runtime:Runtime.start",),
    "MySQLOrchestratorUseMutualTLS": ("libs.config.derive:read_model_tls",),
    "MySQLOrchestratorSSLCAFile": ("libs.config.derive:read_model_tls",),
    "MySQLOrchestratorSSLCertFile": ("libs.config.derive:read_model_tls",),
    "MySQLOrchestratorSSLPrivateKeyFile": ("libs.config.derive:read_model_tls",),
    "MySQLOrchestratorSSLSkipVerify": ("libs.config.derive:read_model_tls",),
    # -- recovery ---------------------------------------------------------------------------------------
    "RecoveryPeriodBlockSeconds": ("libs.recovery.policy:Policy.from_settings",),
    "RecoveryIgnoreHostnameFilters": ("libs.recovery.policy:Policy.from_settings",),
    "RecoverMasterClusterFilters": ("libs.recovery.policy:Policy.from_settings",),
    "RecoverIntermediateMasterClusterFilters": ("libs.recovery.policy:Policy.from_settings",),
    "PromotionIgnoreHostnameFilters": ("libs.recovery.options:candidate_rules",),
    "CandidateInstanceExpireMinutes": ("services.api.routes.instances:register_candidate",),
    "ApplyMySQLPromotionAfterMasterFailover": ("libs.recovery.options:execution_options",),
    "MasterFailoverDetachReplicaMasterHost": ("libs.recovery.options:execution_options",),
    "MasterFailoverLostInstancesDowntimeMinutes": ("libs.recovery.options:execution_options",),
    "DetachLostReplicasAfterMasterFailover": ("libs.recovery.options:execution_options",),
    "FailMasterPromotionIfSQLThreadNotUpToDate": ("libs.recovery.options:candidate_rules",),
    "DelayMasterPromotionIfSQLThreadNotUpToDate": (
        "libs.recovery.options:candidate_rules",
        "libs.recovery.options:execution_options",
    ),
    "FailMasterPromotionOnLagMinutes": ("libs.recovery.options:candidate_rules",),
    "PreventCrossDataCenterMasterFailover": ("libs.recovery.options:candidate_rules",),
    "PreventCrossRegionMasterFailover": ("libs.recovery.options:candidate_rules",),
    "VerifyReplicationFilters": ("libs.recovery.options:candidate_rules",),
    "PostponeReplicaRecoveryOnLagMinutes": ("libs.recovery.options:candidate_rules",),
    "RecoverNonWriteableMaster": (
        "libs.config.derive:analysis_params",
        "libs.recovery.policy:Policy.from_settings",
    ),
    "EnforceExactSemiSyncReplicas": (
        "libs.config.derive:analysis_params",
        "libs.recovery.policy:Policy.from_settings",
        "services.recovery.wiring:build_collaborators",
    ),
    "RecoverLockedSemiSyncMaster": ("libs.recovery.policy:Policy.from_settings",),
    "CoMasterRecoveryMustPromoteOtherCoMaster": ("libs.recovery.policy:Policy.from_settings",),
    "UseSuperReadOnly": ("libs.recovery.options:execution_options",),
    "MaxConcurrentReplicaOperations": ("libs.recovery.options:execution_options",),
    # -- hooks: run by kind (HookKind's values are the key names) ---------------------------------------
    "ProcessesShellCommand": (
        "libs.recovery.options:SettingsHooks.__call__",
        "services.analyzer.hooks:run_detection_hooks",
    ),
    "OnFailureDetectionProcesses": ("services.analyzer.hooks:run_detection_hooks",),
    "PreGracefulTakeoverProcesses": ("libs.recovery.pipeline",),
    "PreFailoverProcesses": ("libs.recovery.pipeline",),
    "PostMasterFailoverProcesses": ("libs.recovery.recovery_hooks",),
    "PostIntermediateMasterFailoverProcesses": ("libs.recovery.recovery_hooks",),
    "PostFailoverProcesses": ("libs.recovery.recovery_hooks",),
    "PostUnsuccessfulFailoverProcesses": ("libs.recovery.pipeline",),
    "PostGracefulTakeoverProcesses": ("libs.recovery.recovery_hooks",),
    # -- master discovery in Consul ---------------------------------------------------------------------
    "KVClusterMasterPrefix": (
        "services.kvpublisher.service:serve_with.serve",
        "services.recovery.wiring:build_keeper",
    ),
    "ConsulAddress": ("libs.config.settings:Settings.consul_data_centers",),
    "ConsulScheme": ("libs.config.settings:Settings.consul_data_centers",),
    "ConsulAclToken": ("libs.config.settings:Settings.consul_data_centers",),
    # -- Baton's own ------------------------------------------------------------------------------------
    "BatonNatsURLs": ("libs.service_main:require_nats",),
    "BatonNatsCAFile": ("libs.config.derive:nats_security",),
    "BatonNatsCertFile": ("libs.config.derive:nats_security",),
    "BatonNatsKeyFile": ("libs.config.derive:nats_security",),
    "BatonNatsUser": ("libs.config.derive:nats_security",),
    "BatonNatsPassword": ("libs.config.derive:nats_security",),
    "BatonNatsToken": ("libs.config.derive:nats_security",),
    "BatonNatsCredsFile": ("libs.config.derive:nats_security",),
    "BatonNatsNKeySeedFile": ("libs.config.derive:nats_security",),
    "BatonStreamReplicas": (
        "services.prober.service:serve",
        "services.recovery.service:RecoveryService.start",
    ),
    "BatonNodeName": ("services.prober.config:ProberConfig.from_settings",),
    "BatonDataCenter": ("libs.config.settings:Settings.consul_data_centers",),
    "BatonConsulDataCenters": ("libs.config.settings:Settings.consul_data_centers",),
    "BatonKVReconcileSeconds": ("services.kvpublisher.config:RECONCILE_KEY",),
    "BatonHookTimeoutSeconds": (
        "libs.recovery.options:SettingsHooks.__call__",
        "services.analyzer.hooks:run_detection_hooks",
    ),
    "BatonRecoveryStatementTimeoutSeconds": ("libs.recovery.options:statement_timeout",),
    "BatonHeartbeatPeriodsSilent": ("libs.config.derive:analysis_params",),
    "BatonPromoteReplicasWithErrantGTID": ("libs.recovery.options:candidate_rules",),
    "BatonAuthTokens": ("services.api.auth:Authenticator._bearer",),
    "BatonTelemetryExporter": ("libs.service_main:service_main.run",),
    "BatonTelemetryEndpoint": ("libs.service_main:service_main.run",),
    "BatonMetricsListen": ("libs.service_main:service_main.run",),
    "BatonStateDir": ("libs.cli.up:embedded_settings", "libs.config.settings:Settings.read_model_url"),
    "BatonReadModelURL": ("libs.config.settings:Settings.read_model_url",),
}
"""Key -> the code that reads it (`module` or `module:Qualified.name`)."""

NOT_USED: dict[str, str] = {
    "DetectClusterDomainQuery": "Baton publishes no cluster domain",
    "DetectInstanceAliasQuery": "Baton shows no instance alias",
    "FailureDetectionPeriodBlockMinutes": "a detection is registered once per incident; the recovery "
    "acts on detections up to one hour old",
    "PostTakeMasterProcesses": "the take-master operation runs no hooks",
    "ConsulCrossDataCenterDistribution": "Baton writes to every data center of BatonConsulDataCenters",
    "ConsulKVStoreProvider": "Baton always writes one Consul transaction per cluster (consul-txn)",
    "ConsulMaxKVsPerTransaction": "a cluster's keys always fit one transaction",
}
"""Key -> why Baton accepts it yet has no use for it. A config that sets one gets a WARNING."""
