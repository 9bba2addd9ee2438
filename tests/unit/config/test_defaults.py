"""Defaults are orchestrator's (reference §1f), except where Baton documents a deliberate difference."""

from __future__ import annotations

import socket

import pytest

from libs.config import Settings, load_settings
from libs.config.derive import analysis_params
from libs.config.legacy import IGNORED_KEYS, RENAMED_KEYS, SCALED_KEYS
from libs.config.reference import key_reference, markdown_table

ORCHESTRATOR_DEFAULTS = {
    "BackendDB": "mysql",
    "InstancePollSeconds": 5,
    "ReasonableInstanceCheckSeconds": 1,
    "MySQLConnectTimeoutSeconds": 2,
    "MySQLDiscoveryReadTimeoutSeconds": 10,
    "MySQLTopologyReadTimeoutSeconds": 600,
    "MySQLOrchestratorReadTimeoutSeconds": 30,
    "ReasonableReplicationLagSeconds": 10,
    "ReasonableMaintenanceReplicationLagSeconds": 20,
    "ReasonableLockedSemiSyncMasterSeconds": 0,
    "InstanceBulkOperationsWaitTimeoutSeconds": 10,
    "FailureDetectionPeriodBlockMinutes": 60,
    "RecoveryPeriodBlockSeconds": 3600,
    "CandidateInstanceExpireMinutes": 60,
    "UnseenInstanceForgetHours": 240,
    "DetachLostReplicasAfterMasterFailover": True,
    "ApplyMySQLPromotionAfterMasterFailover": True,
    "PreventCrossDataCenterMasterFailover": False,
    "PreventCrossRegionMasterFailover": False,
    "FailMasterPromotionIfSQLThreadNotUpToDate": False,
    "DelayMasterPromotionIfSQLThreadNotUpToDate": False,
    "FailMasterPromotionOnLagMinutes": 0,
    "CoMasterRecoveryMustPromoteOtherCoMaster": True,
    "RecoverMasterClusterFilters": [],
    "RecoverIntermediateMasterClusterFilters": [],
    "KVClusterMasterPrefix": "mysql/master",
    "DiscoverByShowSlaveHosts": False,
    "HostnameResolveMethod": "default",
    "MySQLHostnameResolveMethod": "@@hostname",
    "MasterFailoverLostInstancesDowntimeMinutes": 0,
    "ProcessesShellCommand": "bash",
    "PowerAuthUsers": ["*"],
    "AuthenticationMethod": "",
    "ConsulScheme": "http",
    "ConsulCrossDataCenterDistribution": False,
    "ConsulMaxKVsPerTransaction": 5,
    "StatusEndpoint": "/api/status",
    "DefaultInstancePort": 3306,
    "MySQLOrchestratorPort": 3306,
    "OnFailureDetectionProcesses": [],
    "PreFailoverProcesses": [],
    "PostFailoverProcesses": [],
    "PostMasterFailoverProcesses": [],
    "PostIntermediateMasterFailoverProcesses": [],
    "PostUnsuccessfulFailoverProcesses": [],
    "PreGracefulTakeoverProcesses": [],
    "PostGracefulTakeoverProcesses": [],
}


@pytest.mark.parametrize(("key", "expected"), sorted(ORCHESTRATOR_DEFAULTS.items()))
def test_orchestrator_default(key: str, expected: object) -> None:
    assert getattr(Settings(), key) == expected


def test_load_without_file_or_env_gives_the_defaults() -> None:
    assert load_settings(None, env={}) == Settings()


def test_baton_defaults() -> None:
    settings = Settings()
    assert settings.ListenAddress == "127.0.0.1:3000"  # documented deviation: loopback, not ":3000"
    assert settings.BatonNatsURLs == []
    assert settings.BatonStreamReplicas == 1
    assert settings.BatonNodeName == socket.gethostname()
    assert settings.BatonHookTimeoutSeconds == 60.0
    assert settings.BatonTelemetryExporter == "none"
    assert settings.consul_data_centers() == {}
    assert settings.read_model_url().get_secret_value() == "sqlite+aiosqlite:///.baton/baton.db"
    assert settings.kv_master_prefix == "mysql/master/"
    assert settings.locked_semi_sync_master_seconds == 10
    assert settings.BatonHeartbeatPeriodsSilent == 2.0


def test_heartbeat_periods_reach_the_analysis() -> None:
    assert analysis_params(Settings()).heartbeat_periods_silent == 2.0
    assert analysis_params(Settings(BatonHeartbeatPeriodsSilent=0)).heartbeat_periods_silent == 0.0
    assert analysis_params(Settings(BatonHeartbeatPeriodsSilent=5)).heartbeat_periods_silent == 5.0


def test_every_field_is_documented() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undocumented == []


def test_key_catalogues_do_not_overlap_and_are_case_unique() -> None:
    fields = set(Settings.model_fields)
    assert not fields & IGNORED_KEYS
    assert not fields & set(RENAMED_KEYS)
    assert not fields & set(SCALED_KEYS)
    assert set(RENAMED_KEYS.values()) <= fields
    lowered = [name.lower() for name in [*fields, *RENAMED_KEYS, *SCALED_KEYS]]
    assert len(lowered) == len(set(lowered))


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.InstancePollSeconds = 1


def test_key_reference_covers_every_key() -> None:
    rows = key_reference()
    assert [row[0] for row in rows] == list(Settings.model_fields)
    by_key = {row[0]: row for row in rows}
    assert by_key["InstancePollSeconds"][:3] == ("InstancePollSeconds", "int", "5")
    assert markdown_table().count("\n") == len(rows) + 1
