"""The names of what the analyzer can find: orchestrator's analysis codes, so operators recognise them.

One enum holds both primary codes (one per instance, first match wins) and structure warnings (any
number per instance), as orchestrator's `AnalysisCode` does: `NoWriteableMasterStructureWarning` is
both, depending on configuration.
"""

from __future__ import annotations

from enum import StrEnum


class Analysis(StrEnum):
    NO_PROBLEM = "NoProblem"

    # master
    DEAD_MASTER_WITHOUT_REPLICAS = "DeadMasterWithoutReplicas"
    DEAD_MASTER = "DeadMaster"
    DEAD_MASTER_AND_REPLICAS = "DeadMasterAndReplicas"
    DEAD_MASTER_AND_SOME_REPLICAS = "DeadMasterAndSomeReplicas"
    UNREACHABLE_MASTER_WITH_LAGGING_REPLICAS = "UnreachableMasterWithLaggingReplicas"
    UNREACHABLE_MASTER = "UnreachableMaster"
    LOCKED_SEMI_SYNC_MASTER = "LockedSemiSyncMaster"
    LOCKED_SEMI_SYNC_MASTER_HYPOTHESIS = "LockedSemiSyncMasterHypothesis"
    MASTER_WITH_TOO_MANY_SEMI_SYNC_REPLICAS = "MasterWithTooManySemiSyncReplicas"
    MASTER_SINGLE_REPLICA_NOT_REPLICATING = "MasterSingleReplicaNotReplicating"
    MASTER_SINGLE_REPLICA_DEAD = "MasterSingleReplicaDead"
    ALL_MASTER_REPLICAS_NOT_REPLICATING = "AllMasterReplicasNotReplicating"
    ALL_MASTER_REPLICAS_NOT_REPLICATING_OR_DEAD = "AllMasterReplicasNotReplicatingOrDead"

    # co-master
    DEAD_CO_MASTER = "DeadCoMaster"
    DEAD_CO_MASTER_AND_SOME_REPLICAS = "DeadCoMasterAndSomeReplicas"
    UNREACHABLE_CO_MASTER = "UnreachableCoMaster"
    ALL_CO_MASTER_REPLICAS_NOT_REPLICATING = "AllCoMasterReplicasNotReplicating"

    # intermediate master
    DEAD_INTERMEDIATE_MASTER_WITH_SINGLE_REPLICA_FAILING_TO_CONNECT = (
        "DeadIntermediateMasterWithSingleReplicaFailingToConnect"
    )
    DEAD_INTERMEDIATE_MASTER_WITH_SINGLE_REPLICA = "DeadIntermediateMasterWithSingleReplica"
    DEAD_INTERMEDIATE_MASTER = "DeadIntermediateMaster"
    DEAD_INTERMEDIATE_MASTER_AND_SOME_REPLICAS = "DeadIntermediateMasterAndSomeReplicas"
    DEAD_INTERMEDIATE_MASTER_AND_REPLICAS = "DeadIntermediateMasterAndReplicas"
    UNREACHABLE_INTERMEDIATE_MASTER_WITH_LAGGING_REPLICAS = "UnreachableIntermediateMasterWithLaggingReplicas"
    UNREACHABLE_INTERMEDIATE_MASTER = "UnreachableIntermediateMaster"
    ALL_INTERMEDIATE_MASTER_REPLICAS_FAILING_TO_CONNECT_OR_DEAD = (
        "AllIntermediateMasterReplicasFailingToConnectOrDead"
    )
    ALL_INTERMEDIATE_MASTER_REPLICAS_NOT_REPLICATING = "AllIntermediateMasterReplicasNotReplicating"

    # replica
    FIRST_TIER_REPLICA_FAILING_TO_CONNECT_TO_MASTER = "FirstTierReplicaFailingToConnectToMaster"

    # structure warnings
    NO_FAILOVER_SUPPORT = "NoFailoverSupportStructureWarning"
    NO_LOGGING_REPLICAS = "NoLoggingReplicasStructureWarning"
    STATEMENT_AND_MIXED_LOGGING_REPLICAS = "StatementAndMixedLoggingReplicasStructureWarning"
    STATEMENT_AND_ROW_LOGGING_REPLICAS = "StatementAndRowLoggingReplicasStructureWarning"
    MIXED_AND_ROW_LOGGING_REPLICAS = "MixedAndRowLoggingReplicasStructureWarning"
    MULTIPLE_MAJOR_VERSIONS_LOGGING_REPLICAS = "MultipleMajorVersionsLoggingReplicasStructureWarning"
    DIFFERENT_GTID_MODES = "DifferentGTIDModesStructureWarning"
    ERRANT_GTID = "ErrantGTIDStructureWarning"
    NO_WRITEABLE_MASTER = "NoWriteableMasterStructureWarning"
    NOT_ENOUGH_VALID_SEMI_SYNC_REPLICAS = "NotEnoughValidSemiSyncReplicasStructureWarning"

    @property
    def is_structure_warning(self) -> bool:
        return self.value.endswith("StructureWarning")
