"""orchestrator keys about failure detection, recovery, hooks and master discovery (KV).

Names, meanings and defaults are orchestrator 3.2.6's (`../shared/reference/orchestrator.md` §1b-1d).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr

from libs.config.base import ConfigSection, NonNegative, RegexList


def _cluster_filters(filters: list[str]) -> list[str]:
    """Check orchestrator's filter forms: `*`, `alias=X`, `alias~=REGEX`, or a name/regex on the cluster."""
    for entry in filters:
        if entry == "*" or entry.startswith("alias="):
            continue
        pattern = entry.removeprefix("alias~=")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return filters


ClusterFilters = Annotated[list[str], AfterValidator(_cluster_filters)]

HookCommands = list[str]


class RecoveryKeys(ConfigSection):
    """When Baton recovers, how, which hooks it runs, and where it publishes masters."""

    FailureDetectionPeriodBlockMinutes: NonNegative = 60
    """A detection of the same failure is not registered (nor its hooks run) again within this period."""
    RecoveryPeriodBlockSeconds: NonNegative = 3600
    """After a recovery of a cluster, no automated recovery of it for this long unless acknowledged.
    The legacy key RecoveryPeriodBlockMinutes (x60) is read when this one is absent."""
    RecoveryIgnoreHostnameFilters: RegexList = Field(default_factory=list)
    """Regexes: failures of instances whose hostname matches are ignored entirely."""
    RecoverMasterClusterFilters: ClusterFilters = Field(default_factory=list)
    """Clusters whose dead masters are recovered automatically: `*`, a cluster name, an alias,
    `alias=X`, `alias~=REGEX`, or a regex on the cluster name. Empty = none (opt-in)."""
    RecoverIntermediateMasterClusterFilters: ClusterFilters = Field(default_factory=list)
    """Same, for intermediate masters."""
    PromotionIgnoreHostnameFilters: RegexList = Field(default_factory=list)
    """Regexes: instances whose hostname matches are never promoted."""
    CandidateInstanceExpireMinutes: NonNegative = 60
    """A registered promotion rule (register-candidate) expires after this long."""

    ApplyMySQLPromotionAfterMasterFailover: bool = True
    """On the promoted replica: stop replication, RESET SLAVE ALL, read_only=0."""
    MasterFailoverLostInstancesDowntimeMinutes: NonNegative = 0
    """Minutes of downtime (reason lost-in-recovery) for the failed master and lost replicas after a
    failover; 0 = none, as orchestrator documents it (orchestrator 3.2.6 ignores the key and always
    uses 365 days)."""
    MasterFailoverDetachReplicaMasterHost: bool = False
    """Detach the promoted server's master_host (`MASTER_HOST='//host'`, replication stopped) so it can
    never replicate from the old master again. With ApplyMySQLPromotionAfterMasterFailover on, RESET
    SLAVE ALL already forgets the old master and there is nothing left to detach."""
    DetachLostReplicasAfterMasterFailover: bool = True
    """Detach (reversibly) replicas that could not be moved under the new master."""
    FailMasterPromotionIfSQLThreadNotUpToDate: bool = False
    """Abort a promotion if the candidate has not applied all of its relay log."""
    DelayMasterPromotionIfSQLThreadNotUpToDate: bool = False
    """Wait for the candidate to apply its relay log before promoting (exclusive with Fail...)."""
    FailMasterPromotionOnLagMinutes: NonNegative = 0
    """Abort a promotion if the candidate lags this many minutes or more (needs ReplicationLagQuery)."""
    PreventCrossDataCenterMasterFailover: bool = False
    """Only promote a server in the failed master's data center, or fail."""
    PreventCrossRegionMasterFailover: bool = False
    """Only promote a server in the failed master's region, or fail."""
    PostponeReplicaRecoveryOnLagMinutes: NonNegative = 0
    """Replicas whose SQL_Delay (MASTER_DELAY) is above this many minutes are repointed under the new
    master only once it is promoted (orchestrator's postponed relocation: they do not hold the promotion
    back). Baton does it right after the promotion step, before publishing and the hooks. 0: off."""
    CoMasterRecoveryMustPromoteOtherCoMaster: bool = True
    """In a co-master failure, promote the other co-master or fail."""
    RecoverNonWriteableMaster: bool = False
    """Treat a read-only master as a failure and make it writeable."""
    RecoverLockedSemiSyncMaster: bool = False
    """Repair a LockedSemiSyncMaster by enabling semi-sync on enough replicas."""
    EnforceExactSemiSyncReplicas: bool = False
    """Keep exactly the wait-count number of semi-sync replicas enabled."""
    VerifyReplicationFilters: bool = False
    """orchestrator's rule: a server with replication filters (Replicate_Do_DB & co.) cannot serve a
    replica that has none. Failovers then neither promote such a server over unfiltered replicas nor move
    them under it, and dead intermediate masters' replicas are not relocated under it. (Manual
    relocations through the API do not check it.)"""
    UseSuperReadOnly: bool = False
    """Set super_read_only (MySQL) whenever read_only is set."""
    MaxConcurrentReplicaOperations: int = Field(default=5, ge=1)
    """How many replicas are repointed at once."""

    ProcessesShellCommand: str = "bash"
    """Shell that runs hook commands (`<shell> -c <command>`)."""
    OnFailureDetectionProcesses: HookCommands = Field(default_factory=list)
    """Hooks run once per new detection; a failure aborts the recovery attempt."""
    PreGracefulTakeoverProcesses: HookCommands = Field(default_factory=list)
    """Hooks run before a graceful takeover sets the master read-only; a failure aborts it."""
    PreFailoverProcesses: HookCommands = Field(default_factory=list)
    """Hooks run before any recovery acts; a failure aborts the recovery."""
    PostMasterFailoverProcesses: HookCommands = Field(default_factory=list)
    """Hooks run after a successful master or co-master recovery."""
    PostIntermediateMasterFailoverProcesses: HookCommands = Field(default_factory=list)
    """Hooks run after a successful intermediate-master recovery."""
    PostFailoverProcesses: HookCommands = Field(default_factory=list)
    """Hooks run after any successful recovery (after the specific ones)."""
    PostUnsuccessfulFailoverProcesses: HookCommands = Field(default_factory=list)
    """Hooks run after a recovery that found no successor."""
    PostGracefulTakeoverProcesses: HookCommands = Field(default_factory=list)
    """Hooks run at the end of a graceful takeover."""
    PostTakeMasterProcesses: HookCommands = Field(default_factory=list)
    """Hooks run after a take-master operation."""

    KVClusterMasterPrefix: str = "mysql/master"
    """Prefix of the published master keys (`<prefix>/<alias>`, `.../hostname`, ...)."""
    ConsulAddress: str = ""
    """Consul HTTP API (`host:port`) of the single data center when BatonConsulDataCenters is empty."""
    ConsulScheme: Literal["http", "https"] = "http"
    """Scheme of ConsulAddress."""
    ConsulAclToken: SecretStr = SecretStr("")
    """ACL token for ConsulAddress (`${VAR}` allowed)."""
    ConsulCrossDataCenterDistribution: bool = False
    """orchestrator: also write to every DC Consul's catalog lists. Baton writes to every DC of
    BatonConsulDataCenters instead; this key is kept for compatibility and only logged."""
    ConsulKVStoreProvider: Literal["consul", "consul-txn"] = "consul"
    """orchestrator's write mode. Baton always writes one transaction per cluster (`consul-txn`)."""
    ConsulMaxKVsPerTransaction: int = Field(default=5, ge=5, le=64)
    """Upper bound of operations per Consul transaction (5..64)."""
