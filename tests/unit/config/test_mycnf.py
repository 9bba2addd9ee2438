"""my.cnf-style credential files, standalone and through load_settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from libs.config import ConfigError, load_settings, read_mycnf


def mycnf(tmp_path: Path, text: str, name: str = "creds.cnf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("password=plain", "plain"),
        ("password = spaced ", "spaced"),
        ("password='single # not a comment'", "single # not a comment"),
        ('password="double quoted"', "double quoted"),
        ("password=before # a comment", "before"),
        ("password=with=equals", "with=equals"),
        ("password=", ""),
    ],
)
def test_password_value_rules(tmp_path: Path, line: str, expected: str) -> None:
    creds = read_mycnf(mycnf(tmp_path, f"[client]\nuser=orc\n{line}\n"))
    assert creds.user == "orc"
    assert creds.password is not None
    assert creds.password.get_secret_value() == expected


def test_case_insensitive_section_and_keys_and_other_content_ignored(tmp_path: Path) -> None:
    text = (
        "!includedir /etc/mysql/conf.d/\n[mysqld]\nport=3307\n[Client]\nUSER = topo\nPassword=pw\nskip-ssl\n"
    )
    creds = read_mycnf(mycnf(tmp_path, text))
    assert creds.user == "topo"
    assert creds.password is not None and creds.password.get_secret_value() == "pw"


def test_missing_keys_are_none(tmp_path: Path) -> None:
    creds = read_mycnf(mycnf(tmp_path, "[client]\nhost=x\n"))
    assert creds.user is None and creds.password is None


def test_no_client_section(tmp_path: Path) -> None:
    path = mycnf(tmp_path, "[mysqld]\nuser=x\n")
    with pytest.raises(ConfigError, match=r"has no \[client\] section"):
        read_mycnf(path, key="MySQLTopologyCredentialsConfigFile")


def test_not_a_cnf_file_does_not_echo_its_content(tmp_path: Path) -> None:
    path = mycnf(tmp_path, "password=outside-any-section\n")
    with pytest.raises(ConfigError) as info:
        read_mycnf(path)
    assert "outside-any-section" not in str(info.value)


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^MySQLTopologyCredentialsConfigFile: cannot read .*: Is a directory$"
    ):
        read_mycnf(tmp_path, key="MySQLTopologyCredentialsConfigFile")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = mycnf(tmp_path, "[client]\nuser=x\n")
    path.chmod(0)
    with pytest.raises(ConfigError, match="Permission denied"):
        read_mycnf(path)


def test_credentials_file_overrides_user_and_password(tmp_path: Path) -> None:
    cnf = mycnf(tmp_path, "[client]\nuser=from_file\npassword='file pw'\n")
    repl = mycnf(tmp_path, "[client]\npassword=repl_pw\n", "repl.cnf")
    conf = tmp_path / "baton.json"
    conf.write_text(
        json.dumps(
            {
                "MySQLTopologyUser": "from_json",
                "MySQLTopologyPassword": "json pw",
                "MySQLTopologyCredentialsConfigFile": str(cnf),
                "MySQLReplicationUser": "repl",
                "MySQLReplicationCredentialsConfigFile": str(repl),
            }
        )
    )
    settings = load_settings(conf, env={"BATON_MySQLTopologyPassword": "env pw"})
    assert settings.MySQLTopologyUser == "from_file"
    assert settings.MySQLTopologyPassword.get_secret_value() == "file pw"
    assert settings.MySQLReplicationUser == "repl"  # the file has no user: the JSON one stays
    assert settings.MySQLReplicationPassword.get_secret_value() == "repl_pw"


def test_missing_credentials_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "baton.json"
    conf.write_text(json.dumps({"MySQLTopologyCredentialsConfigFile": str(tmp_path / "absent.cnf")}))
    with pytest.raises(ConfigError) as info:
        load_settings(conf, env={})
    assert str(info.value) == (
        f"config {conf}: MySQLTopologyCredentialsConfigFile: cannot read {tmp_path / 'absent.cnf'}: "
        "No such file or directory"
    )
