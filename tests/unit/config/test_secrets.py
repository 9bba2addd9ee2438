"""Secrets never show: not in repr/str, not in redacted_dict, not in logs, not in error messages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from libs.config import SECRET_KEYS, ConfigError, Settings, load_settings

SECRETS = {
    "MySQLTopologyPassword": "topo-Secret-1",
    "MySQLReplicationPassword": "repl-Secret-2",
    "MySQLOrchestratorPassword": "orch-Secret-3",
    "HTTPAuthPassword": "http-Secret-4",
    "ConsulAclToken": "acl-Secret-5",
    "BatonReadModelURL": "mysql+asyncmy://u:url-Secret-6@h/db",
    "BatonNatsPassword": "nats-Secret-9",
    "BatonNatsToken": "nats-token-Secret-10",
}
NESTED = {
    "BatonConsulDataCenters": {"dc1": {"Address": "a:1", "AclToken": "dc-Secret-7"}},
    "BatonAuthTokens": [{"Name": "ci", "Token": "token-Secret-8-long-enough", "Role": "admin"}],
}
ALL_SECRET_VALUES = [*SECRETS.values(), "dc-Secret-7", "token-Secret-8-long-enough"]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "baton.json"
    path.write_text(json.dumps({**SECRETS, **NESTED, "MySQLOrchestratorHost": "h", "UnknownKey": 1}))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_config(tmp_path), env={})


def test_secret_keys_catalogue_is_complete() -> None:
    assert set(SECRETS) | {"AclToken", "Token"} == SECRET_KEYS


def test_values_are_loaded(settings: Settings) -> None:
    assert settings.MySQLTopologyPassword.get_secret_value() == "topo-Secret-1"
    assert settings.BatonAuthTokens[0].Token.get_secret_value() == "token-Secret-8-long-enough"


def test_not_in_repr_or_str(settings: Settings) -> None:
    for text in (repr(settings), str(settings), f"{settings}", repr(settings.consul_data_centers())):
        for secret in ALL_SECRET_VALUES:
            assert secret not in text


def test_not_in_redacted_dict(settings: Settings) -> None:
    dumped = json.dumps(settings.redacted_dict())
    for secret in ALL_SECRET_VALUES:
        assert secret not in dumped
    redacted = settings.redacted_dict()
    assert redacted["MySQLTopologyPassword"] == "**********"
    assert redacted["BatonConsulDataCenters"]["dc1"]["AclToken"] == "**********"
    assert redacted["MySQLTopologyUser"] == ""  # non-secrets are shown as they are


def test_not_in_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        load_settings(write_config(tmp_path), env={})
    assert "UnknownKey" in caplog.text  # something was logged: the check below is not vacuous
    for secret in ALL_SECRET_VALUES:
        assert secret not in caplog.text


def test_read_model_url_is_secret(settings: Settings) -> None:
    assert "orch-Secret-3" not in repr(settings.read_model_url())


def test_not_in_type_errors(tmp_path: Path) -> None:
    path = tmp_path / "baton.json"
    path.write_text(json.dumps({"MySQLTopologyPassword": 987654321}))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == f"config {path}: MySQLTopologyPassword: expected a string, got a number"
    assert "987654321" not in str(info.value)


def test_nested_secret_not_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "baton.json"
    path.write_text(json.dumps({"BatonAuthTokens": [{"Name": "x", "Token": ["tok-Secret-9"]}]}))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "BatonAuthTokens[0].Token: expected a string, got a list" in str(info.value)
    assert "tok-Secret-9" not in str(info.value)
