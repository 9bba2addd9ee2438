"""reload-configuration / SIGHUP: live keys applied through the listeners, the others named as needing a
restart, a bad file changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libs.config import Settings, load_settings
from libs.config.reload import ConfigSource
from libs.errors import ConfigError


def write(path: Path, **keys: object) -> None:
    path.write_text(json.dumps(keys))


def test_live_keys_apply_and_the_rest_wait_for_a_restart(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    write(cfg, InstancePollSeconds=5, ListenAddress="127.0.0.1:3000")
    seen: list[Settings] = []
    source = ConfigSource("api", str(cfg), load_settings(str(cfg), {}), env={})
    source.listen(seen.append)
    write(cfg, InstancePollSeconds=7, ListenAddress="127.0.0.1:3001", PowerAuthUsers=["bob"])
    result = source.reload()
    assert result.applied == ("InstancePollSeconds", "PowerAuthUsers")
    assert result.restart == ("ListenAddress",)
    assert seen and seen[-1].InstancePollSeconds == 7 and seen[-1].PowerAuthUsers == ["bob"]
    assert source.current.ListenAddress == "127.0.0.1:3000"  # not in effect until a restart
    assert "needs a restart: ListenAddress" in result.summary()
    assert source.reload().summary() == "needs a restart: ListenAddress"  # still pending, nothing new


def test_a_service_without_listener_applies_nothing_live(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    write(cfg, InstancePollSeconds=5)
    source = ConfigSource("prober", str(cfg), load_settings(str(cfg), {}), env={})
    write(cfg, InstancePollSeconds=6)
    result = source.reload()
    assert result.applied == () and result.restart == ("InstancePollSeconds",)
    assert source.current.InstancePollSeconds == 5


def test_a_bad_file_is_a_config_error_and_changes_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    write(cfg, InstancePollSeconds=5)
    source = ConfigSource("api", str(cfg), load_settings(str(cfg), {}), env={})
    source.listen(lambda s: None)
    write(cfg, InstancePollSeconds="five")
    with pytest.raises(ConfigError, match="InstancePollSeconds"):
        source.reload()
    assert source.current.InstancePollSeconds == 5


def test_secrets_compare_by_value_and_never_show(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    write(cfg, HTTPAuthPassword="old-secret")
    source = ConfigSource("api", str(cfg), load_settings(str(cfg), {}), env={})
    source.listen(lambda s: None)
    write(cfg, HTTPAuthPassword="new-secret")
    result = source.reload()
    assert result.applied == ("HTTPAuthPassword",)
    assert "secret" not in result.summary()
    assert source.current.HTTPAuthPassword.get_secret_value() == "new-secret"
