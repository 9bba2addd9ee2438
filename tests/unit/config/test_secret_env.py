"""Child processes (hooks) never inherit a secret through the environment, e.g. the variable a
`${VAR}` password was read from."""

from __future__ import annotations

from pydantic import SecretStr

from libs.config import AuthToken, ConsulDataCenter, Settings, load_settings


def test_secret_values_are_found_at_every_depth() -> None:
    settings = Settings(
        MySQLTopologyPassword=SecretStr("topo-secret"),
        BatonAuthTokens=[AuthToken(Name="ops", Token=SecretStr("token-secret-0123456789"), Role="admin")],
        BatonConsulDataCenters={"dc1": ConsulDataCenter(Address="c:8500", AclToken=SecretStr("acl-secret"))},
    )
    assert settings.secret_values() == {"topo-secret", "token-secret-0123456789", "acl-secret"}
    assert Settings().secret_values() == set()


def test_the_variable_a_password_came_from_is_not_inherited() -> None:
    env = {
        "TOPO_PW": "s3cr3t-topology",
        "PATH": "/usr/bin",
        "WRAPPED": "x-s3cr3t-topology-y",
        "HOME": "/root",
    }
    settings = load_settings(None, env={**env, "BATON_MySQLTopologyPassword": "${TOPO_PW}"})
    assert settings.MySQLTopologyPassword.get_secret_value() == "s3cr3t-topology"
    assert settings.environment_without_secrets(env) == {"PATH": "/usr/bin", "HOME": "/root"}
    assert Settings().environment_without_secrets(env) == env
