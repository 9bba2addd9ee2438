"""orchestrator keys about reaching, probing and naming MySQL servers, and about the HTTP API.

Names, meanings and defaults are orchestrator 3.2.6's (see `docs/` and
`../shared/reference/orchestrator.md` §1f); where Baton's default differs it says so.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from libs.config.base import ConfigSection, NonNegative, Port, Regex, RegexList


class TopologyKeys(ConfigSection):
    """How Baton reaches the MySQL servers it manages and what it reads from them."""

    MySQLTopologyUser: str = ""
    """User Baton connects to every managed server as."""
    MySQLTopologyPassword: SecretStr = SecretStr("")
    """Password of MySQLTopologyUser. `${VAR}` reads it from the environment variable VAR."""
    MySQLTopologyCredentialsConfigFile: str = ""
    """my.cnf-style file whose `[client]` `user`/`password` override MySQLTopologyUser/Password."""
    MySQLTopologySSLPrivateKeyFile: str = ""
    """TLS client key for topology connections (with MySQLTopologySSLCertFile)."""
    MySQLTopologySSLCertFile: str = ""
    """TLS client certificate for topology connections, presented to every managed server (what a user
    `REQUIRE X509` needs). Used only with MySQLTopologyUseMutualTLS."""
    MySQLTopologySSLCAFile: str = ""
    """CA bundle the managed servers' certificates are verified with (empty: the system CAs)."""
    MySQLTopologySSLSkipVerify: bool = False
    """Do not verify the managed servers' certificates (neither their CA nor their hostname)."""
    MySQLTopologyUseMutualTLS: bool = False
    """Use TLS, with the MySQLTopologySSL* files, on every topology connection (probes, liveness checks,
    recovery and CLI operations). orchestrator's rule: false means plaintext even when the files are set
    (Baton warns then). A missing or unreadable file fails at start naming its key."""
    MySQLReplicationUser: str = ""
    """Baton extension: user that replicas use in CHANGE MASTER TO when Baton repoints them."""
    MySQLReplicationPassword: SecretStr = SecretStr("")
    """Baton extension: password of MySQLReplicationUser (`${VAR}` allowed)."""
    MySQLReplicationCredentialsConfigFile: str = ""
    """Baton extension: my.cnf-style file overriding MySQLReplicationUser/Password."""
    MySQLConnectTimeoutSeconds: int = Field(default=2, ge=1)
    """Connect timeout of every MySQL connection."""
    MySQLDiscoveryReadTimeoutSeconds: int = Field(default=10, ge=1)
    """Read timeout of probe (discovery) queries."""
    MySQLTopologyReadTimeoutSeconds: int = Field(default=600, ge=1)
    """Read timeout of operations (CHANGE MASTER, waits for catch-up, ...)."""
    DefaultInstancePort: Port = 3306
    """Port assumed when an instance is named without one."""

    InstancePollSeconds: int = Field(default=5, ge=1)
    """Interval between two probes of the same instance."""
    ReasonableInstanceCheckSeconds: int = Field(default=1, ge=0)
    """How long a probe may take before the instance counts as not freshly checked."""
    ReasonableReplicationLagSeconds: NonNegative = 10
    """Replication lag above which a replica counts as lagging."""
    ReasonableMaintenanceReplicationLagSeconds: NonNegative = 20
    """Lag above which planned operations (graceful takeover) refuse to start or wait."""
    ReasonableLockedSemiSyncMasterSeconds: NonNegative = 0
    """How long a semi-sync master may look locked before LockedSemiSyncMaster; 0 = the lag setting."""
    UnseenInstanceForgetHours: NonNegative = 240
    """Instances no probe has reached for this long are forgotten (removed from the registry) by the
    prober worker that owns them; the count restarts when a worker takes an instance over, so forgetting
    may come late, never early. 0: never (Baton's choice; orchestrator would forget at once)."""
    InstanceBulkOperationsWaitTimeoutSeconds: NonNegative = 10
    """Per-instance wait in bulk operations (e.g. waiting for replicas to stop nicely). In a failover: how
    long the replicas get to apply what they received once their IO threads are stopped (the drain), the
    chosen data holder to apply its relay log, and a repointed replica to stream from its new source."""

    DiscoverByShowSlaveHosts: bool = False
    """Find replicas with SHOW SLAVE HOSTS before falling back to the processlist."""
    DiscoverySeeds: list[str] = Field(default_factory=list)
    """`host:port` instances to discover at start."""
    DiscoveryIgnoreReplicaHostnameFilters: RegexList = Field(default_factory=list)
    """Regexes: replicas whose hostname matches are not discovered."""
    DiscoveryIgnoreMasterHostnameFilters: RegexList = Field(default_factory=list)
    """Regexes: masters whose hostname matches are not discovered."""
    DiscoveryIgnoreHostnameFilters: RegexList = Field(default_factory=list)
    """Regexes: no instance whose hostname matches is discovered."""
    HostnameResolveMethod: Literal["none", "default", "cname"] = "default"
    """How Baton normalises hostnames it is given: not at all, as given, or via DNS CNAME."""
    MySQLHostnameResolveMethod: Literal["none", "@@hostname", "@@report_host"] = "@@hostname"
    """Which server variable names an instance (`@@report_host` suits sandboxes and containers)."""

    ReplicationLagQuery: str = ""
    """Query returning one number, the lag (e.g. from a heartbeat table); empty = Seconds_Behind_Master."""
    DetectClusterAliasQuery: str = ""
    """Query, run on the master, returning the cluster's alias."""
    DetectClusterDomainQuery: str = ""
    """Query, run on the master, returning the cluster's domain (VIP/CNAME)."""
    DetectInstanceAliasQuery: str = ""
    """Query returning an instance's alias."""
    DetectDataCenterQuery: str = ""
    """Query returning an instance's data center (overrides DataCenterPattern)."""
    DetectRegionQuery: str = ""
    """Query returning an instance's region (overrides RegionPattern)."""
    DetectPhysicalEnvironmentQuery: str = ""
    """Query returning an instance's physical environment (overrides PhysicalEnvironmentPattern)."""
    DetectPromotionRuleQuery: str = ""
    """Query returning an instance's promotion rule (must/prefer/neutral/prefer_not/must_not)."""
    DetectSemiSyncEnforcedQuery: str = ""
    """Query returning 1 when semi-sync must never fall back to async on this instance."""
    DataCenterPattern: Regex = ""
    """Regex searched in the instance's hostname; its first group is the data center (orchestrator's
    semantics; no match: none). PreventCrossDataCenterMasterFailover compares these."""
    RegionPattern: Regex = ""
    """Regex with one group extracting the region from the hostname."""
    PhysicalEnvironmentPattern: Regex = ""
    """Regex with one group extracting the physical environment from the hostname."""
    ClusterNameToAlias: dict[str, str] = Field(default_factory=dict)
    """Map of regex (searched in the cluster name, the top master's `host:port`) to alias, the first
    match in the file's order; DetectClusterAliasQuery's answer wins over it."""

    ListenAddress: str = "127.0.0.1:3000"
    """Where the HTTP API listens. orchestrator's default is `:3000` (all interfaces); Baton's is
    loopback, so an unconfigured Baton is not reachable from the network."""
    UseSSL: bool = False
    """Serve the HTTP API over HTTPS only, with SSLCertFile/SSLPrivateKeyFile (plain HTTP is then not
    served on ListenAddress). Clients verify it with the CA (`baton`: BATON_API_CA_FILE)."""
    SSLCertFile: str = ""
    """Certificate (PEM, chain allowed) of the API's HTTPS server; needed with UseSSL."""
    SSLPrivateKeyFile: str = ""
    """Private key (PEM, unencrypted) of SSLCertFile."""
    UseMutualTLS: bool = False
    """With UseSSL: every API client must present a certificate signed by SSLCAFile (stricter than
    orchestrator, which checks a given certificate's OU; SSLValidOUs is not used by Baton)."""
    SSLCAFile: str = ""
    """CA bundle that API client certificates are verified with (UseMutualTLS)."""
    URLPrefix: str = ""
    """Serve the API and UI under this path prefix (e.g. behind a reverse proxy)."""
    StatusEndpoint: str = Field(default="/api/status", pattern=r"^/[^?#]*$")
    """Path of the status endpoint (orchestrator's). `/api/status` is always served; another path serves
    the same answer (open like it: load balancers do not log in)."""
    ReadOnly: bool = False
    """Refuse every mutating API command."""
    AuthenticationMethod: Literal["", "basic", "multi", "proxy", "token"] = ""
    """API authentication: none, basic (HTTPAuthUser/Password), multi (basic, plus read-only access for
    user `readonly`), proxy (user named by AuthUserHeader), token (bearer tokens from BatonAuthTokens)."""
    HTTPAuthUser: str = ""
    """Basic-auth user (with AuthenticationMethod basic or multi)."""
    HTTPAuthPassword: SecretStr = SecretStr("")
    """Basic-auth password (`${VAR}` allowed)."""
    AuthUserHeader: str = "X-Forwarded-User"
    """Header naming the user when AuthenticationMethod is proxy."""
    PowerAuthUsers: list[str] = Field(default_factory=lambda: ["*"])
    """Users allowed to run mutating commands (`*` = everyone authenticated)."""
    PowerAuthGroups: list[str] = Field(default_factory=list)
    """Unix groups allowed to run mutating commands: an authenticated user (basic, multi, proxy) that is a
    Unix user of the API's host in one of them is admin, as if listed in PowerAuthUsers."""

    BackendDB: Literal["mysql", "sqlite", "sqlite3"] = "mysql"
    """orchestrator's backend; for Baton, where the API's read model lives (see Settings.read_model_url)."""
    SQLite3DataFile: str = ""
    """SQLite file of the read model when BackendDB is sqlite/sqlite3."""
    MySQLOrchestratorHost: str = ""
    """MySQL server of the read model when BackendDB is mysql (empty: SQLite under BatonStateDir)."""
    MySQLOrchestratorPort: Port = 3306
    """Port of MySQLOrchestratorHost."""
    MySQLOrchestratorDatabase: str = ""
    """Schema of the read model on MySQLOrchestratorHost."""
    MySQLOrchestratorUser: str = ""
    """User for MySQLOrchestratorHost."""
    MySQLOrchestratorPassword: SecretStr = SecretStr("")
    """Password for MySQLOrchestratorHost (`${VAR}` allowed)."""
    MySQLOrchestratorCredentialsConfigFile: str = ""
    """my.cnf-style file overriding MySQLOrchestratorUser/Password."""
    MySQLOrchestratorReadTimeoutSeconds: int = Field(default=30, ge=1)
    """Read timeout of read-model queries on MySQL (a SQLite read model is a local file)."""
    MySQLOrchestratorUseMutualTLS: bool = False
    """Connect to the MySQL read model (BackendDB mysql, or a `mysql+asyncmy://` BatonReadModelURL) with TLS,
    using the MySQLOrchestratorSSL* files (orchestrator's rule: without this key the files are unused)."""
    MySQLOrchestratorSSLCAFile: str = ""
    """CA bundle the read-model server's certificate is verified with (empty: the system CAs)."""
    MySQLOrchestratorSSLCertFile: str = ""
    """TLS client certificate for the read model (with MySQLOrchestratorSSLPrivateKeyFile)."""
    MySQLOrchestratorSSLPrivateKeyFile: str = ""
    """TLS client key for the read model."""
    MySQLOrchestratorSSLSkipVerify: bool = False
    """Do not verify the read-model server's certificate (neither its CA nor its hostname)."""
