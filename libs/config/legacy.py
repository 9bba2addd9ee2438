"""orchestrator keys Baton knows but does not use, and old key names it translates.

An orchestrator config file is full of keys about raft, agents, Pseudo-GTID, Graphite, TLS of its own
web server... Baton has no use for them, but they are not typos: the loader logs them once at INFO
instead of warning about each. A key in neither this catalogue nor `Settings` is unknown and warns.
"""

from __future__ import annotations

# old name -> current name (orchestrator treats them as synonyms).
RENAMED_KEYS: dict[str, str] = {
    "SlaveLagQuery": "ReplicationLagQuery",
    "DetachLostSlavesAfterMasterFailover": "DetachLostReplicasAfterMasterFailover",
    "MasterFailoverDetachSlaveMasterHost": "MasterFailoverDetachReplicaMasterHost",
    "PostponeSlaveRecoveryOnLagMinutes": "PostponeReplicaRecoveryOnLagMinutes",
}

# old name -> (current name, multiplier): RecoveryPeriodBlockMinutes x 60 = RecoveryPeriodBlockSeconds.
SCALED_KEYS: dict[str, tuple[str, int]] = {
    "RecoveryPeriodBlockMinutes": ("RecoveryPeriodBlockSeconds", 60),
}

_IGNORED_GROUPS: dict[str, str] = {
    "process, logging and agents": """
        Debug EnableSyslog ListenSocket HTTPAdvertise AgentsServerPort StatusSimpleHealth StatusOUVerify
        ServeAgentsHttp AgentsUseSSL AgentsUseMutualTLS AgentSSLSkipVerify AgentSSLPrivateKeyFile
        AgentSSLCertFile AgentSSLCAFile AgentSSLValidOUs AgentPollMinutes UnseenAgentForgetHours
        StaleSeedFailMinutes SeedAcceptableBytesDiff SeedWaitSecondsBeforeSend AgentAutoDiscover
        HttpTimeoutSeconds WebMessage RemoveTextFromHostnameDisplay MaxOutdatedKeysToShow
        PrependMessagesWithOrcIdentity
    """,
    "TLS variants Baton does not implement (MySQLTopologyUseMutualTLS, UseSSL/UseMutualTLS are)": """
        MySQLTopologyUseMixedTLS SSLSkipVerify SSLValidOUs
    """,
    "web auth variants Baton does not implement": """
        OAuthClientId OAuthClientSecret OAuthScopes SessionSecretKey AzureClientID AzureTenantID
        AzureGraphUserScope AzureRedirectURL AzureApplicationName AzureApplicationID AzureAdminRole
        AccessTokenUseExpirySeconds AccessTokenExpiryMinutes
    """,
    "orchestrator's own backend and raft (JetStream replaces both)": """
        SkipOrchestratorDatabaseUpdate PanicIfDifferentDatabaseDeploy RaftEnabled RaftBind RaftAdvertise
        RaftDataDir DefaultRaftPort RaftNodes ExpectFailureAnalysisConcensus
        MySQLOrchestratorMaxPoolConnections MySQLOrchestratorRejectReadOnly MySQLConnectionLifetimeSeconds
        InstanceWriteBufferSize
        BufferInstanceWrites InstanceFlushIntervalMilliseconds AuditLogFile AuditToSyslog AuditToBackendDB
        AuditPurgeDays AuditPageSize SupportFuzzyPoolHostnames InstancePoolExpiryMinutes RecoveryPollSeconds
    """,
    "discovery tuning that has no meaning in Baton's sharded prober": """
        TLSCacheTTLFactor SkipMaxScaleCheck SnapshotTopologiesIntervalHours
        DiscoveryMaxConcurrency DiscoveryQueueCapacity DiscoveryQueueMaxStatisticsSize
        DiscoveryCollectionRetentionSeconds SkipBinlogServerUnresolveCheck ExpiryHostnameResolvesMinutes
        RejectHostnameResolvePattern ProblemIgnoreHostnameFilters ReplicationCredentialsQuery
        ReduceReplicationAnalysisCount OSCIgnoreHostnameFilters DeadInstancePollSecondsMultiplyFactor
        DeadInstancePollSecondsMax DeadInstanceDiscoveryMaxConcurrency LowerReplicaVersionAllowed
        DiscoveryIgnoreReplicationUsernameFilters
    """,
    "Pseudo-GTID, remote SSH, Graphite, ZooKeeper": """
        AutoPseudoGTID PseudoGTIDPattern PseudoGTIDPatternIsFixedSubstring PseudoGTIDMonotonicHint
        DetectPseudoGTIDQuery PseudoGTIDPreferIndependentMultiMatch BinlogEventsChunkSize
        SkipBinlogEventsContaining RemoteSSHForMasterFailover RemoteSSHCommand RemoteSSHCommandUseSudo
        GraphiteAddr GraphitePath GraphiteConvertHostnameDotsToUnderscores GraphitePollSeconds ZkAddress
        UnreachableMasterWithStaleSlavesProcesses
    """,
    "deprecated in orchestrator itself": """
        DatabaselessMode__experimental BufferBinlogEvents BinlogFileHistoryDays MaintenanceOwner
        ReadLongRunningQueries DiscoveryPollSeconds ActiveNodeExpireSeconds SlaveStartPostWaitMilliseconds
        MySQLTopologyMaxPoolConnections MaintenancePurgeDays MaintenanceExpireMinutes
        PseudoGTIDCoordinatesHistoryHeuristicMinutes
    """,
}

IGNORED_KEYS: frozenset[str] = frozenset(" ".join(_IGNORED_GROUPS.values()).split())
"""orchestrator keys (grouped above by why) that Baton reads past without complaint."""
