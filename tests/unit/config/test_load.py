"""Loading files and environment: realistic configs, precedence, aliases, warnings and one-line errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from libs.config import ConfigError, Settings, load_settings

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "orchestrator.conf.json"


def write(tmp_path: Path, content: dict[str, Any] | str, name: str = "baton.conf.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def error_of(path: Path | None, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    message = str(info.value)
    assert "\n" not in message
    return message


# ---- a realistic orchestrator config ---------------------------------------------------------------


def test_orchestrator_sample_config_loads(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="libs.config"):
        settings = load_settings(SAMPLE, env={})
    assert settings.ListenAddress == ":3000"
    assert settings.MySQLTopologyUser == "orc_client_user"
    assert settings.MySQLTopologyPassword.get_secret_value() == "orc_client_password"
    assert settings.InstancePollSeconds == 1
    assert settings.MySQLDiscoveryReadTimeoutSeconds == 3
    assert settings.DiscoverByShowSlaveHosts is True
    assert settings.MySQLHostnameResolveMethod == "@@report_host"
    assert settings.ReplicationLagQuery.startswith("SELECT UNIX_TIMESTAMP()")  # from SlaveLagQuery
    assert settings.DetachLostReplicasAfterMasterFailover is False  # from DetachLostSlaves...
    assert settings.RecoveryPeriodBlockSeconds == 600
    assert settings.RecoverMasterClusterFilters == ["*"]
    assert settings.RecoverIntermediateMasterClusterFilters[0] == "alias=orders"
    assert settings.ClusterNameToAlias == {"127.0.0.1": "test suite"}
    assert settings.PreventCrossDataCenterMasterFailover is True
    assert settings.DelayMasterPromotionIfSQLThreadNotUpToDate is True
    assert settings.MasterFailoverLostInstancesDowntimeMinutes == 10
    assert len(settings.PostMasterFailoverProcesses) == 1
    assert settings.hook_commands("PreGracefulTakeoverProcesses")[0].startswith("echo 'Planned")
    assert settings.ConsulKVStoreProvider == "consul-txn"
    assert settings.read_model_url().get_secret_value() == (
        "sqlite+aiosqlite:////var/lib/orchestrator/orchestrator.sqlite3"
    )
    dcs = settings.consul_data_centers()
    assert list(dcs) == ["default"]
    assert dcs["default"].Address == "127.0.0.1:8500"
    # orchestrator keys outside Settings that Baton does not use are listed once at INFO; keys Settings
    # accepts without using (usage.NOT_USED) are each warned about, naming the key.
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned and all("accepted but not used by Baton" in m for m in warned), warned
    assert any("ConsulKVStoreProvider" in m for m in warned)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "RecoveryPollSeconds" in infos[0] and "Debug" in infos[0]


def test_baton_keys_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "BatonNatsURLs": ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"],
            "BatonStreamReplicas": 3,
            "BatonNodeName": "baton-dc1-a",
            "BatonDataCenter": "dc1",
            "BatonConsulDataCenters": {
                "dc1": {"Address": "127.0.0.1:8500", "AclToken": "t1"},
                "dc2": {"Address": "127.0.0.1:8501", "Scheme": "https"},
            },
            "BatonHookTimeoutSeconds": 5,
            "AuthenticationMethod": "token",
            "BatonAuthTokens": [
                {"Name": "ci", "Token": "0123456789abcdef-admin", "Role": "admin"},
                {"Name": "grafana", "Token": "0123456789abcdef-ro"},
            ],
            "BatonTelemetryExporter": "otlp",
            "BatonTelemetryEndpoint": "http://127.0.0.1:4317",
            "BatonStateDir": "/var/lib/baton",
        },
    )
    settings = load_settings(path, env={})
    assert settings.BatonStreamReplicas == 3
    assert settings.BatonHookTimeoutSeconds == 5.0
    assert settings.consul_data_centers()["dc2"].Scheme == "https"
    assert settings.consul_data_centers()["dc1"].AclToken.get_secret_value() == "t1"
    assert [t.Name for t in settings.admin_tokens()] == ["ci"]
    assert settings.BatonAuthTokens[1].Role == "read-only"
    assert settings.read_model_url().get_secret_value() == "sqlite+aiosqlite:////var/lib/baton/baton.db"


def test_mysql_read_model_url_quotes_credentials(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "MySQLOrchestratorHost": "db.example",
            "MySQLOrchestratorPort": 3307,
            "MySQLOrchestratorDatabase": "baton",
            "MySQLOrchestratorUser": "baton",
            "MySQLOrchestratorPassword": "p@ss/word",
        },
    )
    url = load_settings(path, env={}).read_model_url().get_secret_value()
    assert url == "mysql+asyncmy://baton:p%40ss%2Fword@db.example:3307/baton?charset=utf8mb4"


# ---- unknown keys, aliases, case ------------------------------------------------------------------


def test_unknown_key_warns_with_suggestion_and_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, {"InstancePolSeconds": 2, "ReadOnly": True, "TotallyNovel": 1})
    with caplog.at_level(logging.WARNING, logger="libs.config"):
        settings = load_settings(path, env={})
    assert settings.ReadOnly is True
    assert settings.InstancePollSeconds == 5
    messages = [r.getMessage() for r in caplog.records]
    assert any("InstancePolSeconds" in m and "did you mean InstancePollSeconds?" in m for m in messages)
    assert any("TotallyNovel" in m and "did you mean" not in m for m in messages)


def test_key_in_other_case_is_taken_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, {"instancepollseconds": 2})
    with caplog.at_level(logging.WARNING, logger="libs.config"):
        assert load_settings(path, env={}).InstancePollSeconds == 2
    assert "taken as InstancePollSeconds" in caplog.text


def test_comment_keys_are_skipped_silently(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, {"_comment": "managed by puppet", "//": "x"})
    with caplog.at_level(logging.INFO, logger="libs.config"):
        load_settings(path, env={})
    assert caplog.records == []


def test_recovery_period_block_minutes_is_translated(tmp_path: Path) -> None:
    assert (
        load_settings(write(tmp_path, {"RecoveryPeriodBlockMinutes": 2}), env={}).RecoveryPeriodBlockSeconds
        == 120
    )
    both = write(tmp_path, {"RecoveryPeriodBlockMinutes": 2, "RecoveryPeriodBlockSeconds": 30}, "b.json")
    assert load_settings(both, env={}).RecoveryPeriodBlockSeconds == 30


def test_synonyms_that_disagree_fail(tmp_path: Path) -> None:
    path = write(tmp_path, {"SlaveLagQuery": "SELECT 1", "ReplicationLagQuery": "SELECT 2"})
    assert "SlaveLagQuery and ReplicationLagQuery are synonyms" in error_of(path)


def test_duplicate_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, '{"InstancePollSeconds": 1, "InstancePollSeconds": 2}')
    with caplog.at_level(logging.WARNING, logger="libs.config"):
        assert load_settings(path, env={}).InstancePollSeconds == 2
    assert "appears more than once" in caplog.text


# ---- errors --------------------------------------------------------------------------------------


def test_wrong_type_names_file_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, {"InstancePollSeconds": "five"})
    assert error_of(path) == f'config {path}: InstancePollSeconds: expected an integer, got "five"'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"InstancePollSeconds": "5"}, 'InstancePollSeconds: expected an integer, got "5"'),
        ({"InstancePollSeconds": 0}, "InstancePollSeconds: must be at least 1, got 0"),
        ({"InstancePollSeconds": 2.5}, "InstancePollSeconds: expected an integer, got 2.5"),
        ({"ReadOnly": 1}, "ReadOnly: expected true or false, got 1"),
        ({"RecoverMasterClusterFilters": "*"}, 'RecoverMasterClusterFilters: expected a list, got "*"'),
        (
            {"RecoverMasterClusterFilters": ["ok", 3]},
            "RecoverMasterClusterFilters[1]: expected a string, got 3",
        ),
        (
            {"RecoverMasterClusterFilters": ["alias~=(unclosed"]},
            "RecoverMasterClusterFilters: invalid regular",
        ),
        (
            {"RecoveryIgnoreHostnameFilters": ["[a-"]},
            "RecoveryIgnoreHostnameFilters: invalid regular expression",
        ),
        ({"DataCenterPattern": "(?P<dc"}, "DataCenterPattern: invalid regular expression"),
        (
            {"HostnameResolveMethod": "dns"},
            "HostnameResolveMethod: expected one of 'none', 'default' or 'cname'",
        ),
        (
            {"BatonConsulDataCenters": {"dc1": {"Adress": "x"}}},
            "BatonConsulDataCenters.dc1.Adress: unknown key",
        ),
        (
            {"BatonConsulDataCenters": {"dc1": {"Address": ""}}},
            "BatonConsulDataCenters.dc1.Address: must not be",
        ),
        ({"BatonStreamReplicas": 7}, "BatonStreamReplicas: must be at most 5, got 7"),
        ({"BackendDB": "sqlite3"}, "BackendDB 'sqlite3' needs SQLite3DataFile"),
        (
            {"FailMasterPromotionOnLagMinutes": 1},
            "FailMasterPromotionOnLagMinutes > 0 needs ReplicationLagQuery",
        ),
        (
            {
                "FailMasterPromotionIfSQLThreadNotUpToDate": True,
                "DelayMasterPromotionIfSQLThreadNotUpToDate": True,
            },
            "cannot both be true",
        ),
        ({"AuthenticationMethod": "token"}, "needs at least one entry in BatonAuthTokens"),
        (
            {"BatonAuthTokens": [{"Name": "x", "Token": "short"}]},
            "BatonAuthTokens[0].Token: a token must be at least",
        ),
        ({"RecoveryPeriodBlockMinutes": "1"}, 'RecoveryPeriodBlockMinutes: expected an integer, got "1"'),
        ({"BatonHeartbeatPeriodsSilent": 1.5}, "BatonHeartbeatPeriodsSilent: must be 0 (off) or at least 2"),
    ],
)
def test_invalid_values_fail_naming_the_key(tmp_path: Path, content: dict[str, Any], expected: str) -> None:
    path = write(tmp_path, content)
    message = error_of(path)
    assert message.startswith(f"config {path}: ")
    assert expected in message


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "InstancePollSeconds": 5\n  "ReadOnly": true\n}\n')
    assert error_of(path) == f"config {path}: invalid JSON at line 3, column 3: Expecting ',' delimiter"


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert error_of(write(tmp_path, "[1, 2]")).endswith("expected a JSON object at the top level, got a list")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    assert error_of(path) == f"config {path}: no such file"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert error_of(tmp_path).startswith(f"config {tmp_path}: cannot read")


# ---- environment ---------------------------------------------------------------------------------


def test_env_overrides_file_which_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, {"InstancePollSeconds": 3, "ReasonableReplicationLagSeconds": 30})
    env = {"BATON_InstancePollSeconds": "1", "PATH": "/usr/bin"}
    settings = load_settings(path, env=env)
    assert settings.InstancePollSeconds == 1  # env beats file
    assert settings.ReasonableReplicationLagSeconds == 30  # file beats default
    assert settings.MySQLConnectTimeoutSeconds == 2  # default


@pytest.mark.parametrize(
    ("name", "raw", "key", "expected"),
    [
        ("BATON_ReadOnly", "true", "ReadOnly", True),
        ("BATON_READONLY", "yes", "ReadOnly", True),
        ("BATON_DiscoverByShowSlaveHosts", "0", "DiscoverByShowSlaveHosts", False),
        (
            "BATON_RecoverMasterClusterFilters",
            "alias=a, b ,c",
            "RecoverMasterClusterFilters",
            ["alias=a", "b", "c"],
        ),
        (
            "BATON_BatonNatsURLs",
            '["nats://a:4222","nats://b:4222"]',
            "BatonNatsURLs",
            ["nats://a:4222", "nats://b:4222"],
        ),
        ("BATON_MySQLTopologyUser", "123", "MySQLTopologyUser", "123"),
        ("BATON_BatonHookTimeoutSeconds", "2.5", "BatonHookTimeoutSeconds", 2.5),
        ("BATON_SlaveLagQuery", "SELECT 1", "ReplicationLagQuery", "SELECT 1"),
        ("BATON_RecoveryPeriodBlockMinutes", "3", "RecoveryPeriodBlockSeconds", 180),
        ("BATON_ClusterNameToAlias", '{"db1:3306": "main"}', "ClusterNameToAlias", {"db1:3306": "main"}),
    ],
)
def test_env_values_are_typed(name: str, raw: str, key: str, expected: object) -> None:
    assert getattr(load_settings(None, env={name: raw}), key) == expected


def test_env_consul_data_centers_as_json() -> None:
    env = {"BATON_BatonConsulDataCenters": '{"dc1": {"Address": "127.0.0.1:8500"}}'}
    assert load_settings(None, env=env).consul_data_centers()["dc1"].Address == "127.0.0.1:8500"


def test_env_wrong_type_names_the_variable() -> None:
    message = error_of(None, {"BATON_InstancePollSeconds": "five"})
    assert (
        message == 'config $BATON_InstancePollSeconds: InstancePollSeconds: expected an integer, got "five"'
    )


def test_env_invalid_json_names_the_variable() -> None:
    message = error_of(None, {"BATON_BatonConsulDataCenters": "{dc1"})
    assert message.startswith("config $BATON_BatonConsulDataCenters: BatonConsulDataCenters: invalid JSON")


def test_env_typo_warns_and_unrelated_baton_vars_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    env = {"BATON_InstancePolSeconds": "1", "BATON_CONFIG": "/etc/baton.json"}
    with caplog.at_level(logging.WARNING, logger="libs.config"):
        settings = load_settings(None, env=env)
    assert settings == Settings(BatonNodeName=settings.BatonNodeName)
    assert len(caplog.records) == 1
    assert "did you mean BATON_InstancePollSeconds" in caplog.records[0].getMessage()


def test_password_from_environment_reference(tmp_path: Path) -> None:
    path = write(tmp_path, {"MySQLTopologyPassword": "${TOPO_PW}", "ConsulAclToken": "${ACL}"})
    settings = load_settings(path, env={"TOPO_PW": "s3cret", "ACL": "tok"})
    assert settings.MySQLTopologyPassword.get_secret_value() == "s3cret"
    assert settings.ConsulAclToken.get_secret_value() == "tok"
    assert error_of(path, {"ACL": "tok"}) == (
        f"config {path}: MySQLTopologyPassword: environment variable TOPO_PW is not set"
    )


def test_nested_token_from_environment_reference(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"BatonConsulDataCenters": {"dc1": {"Address": "a:1", "AclToken": "${DC1_TOKEN}"}}}
    )
    settings = load_settings(path, env={"DC1_TOKEN": "t-dc1"})
    assert settings.consul_data_centers()["dc1"].AclToken.get_secret_value() == "t-dc1"
