"""The recovery leader's per-statement time limit is below the lease TTL: derived (TTL/2) or configured
(BatonRecoveryStatementTimeoutSeconds), and refused at start when it is not below the TTL."""

from __future__ import annotations

import pytest

from libs.config import Settings
from libs.errors import ConfigError
from libs.mysql import ConnectionPool, Credentials
from libs.recovery.executor import MySQLExecutor
from libs.recovery.leadership import LEASE_TTL_S
from libs.recovery.options import execution_options, statement_timeout
from services.recovery.service import RecoveryService


def _settings(**values: object) -> Settings:
    return Settings.model_validate({"BatonNatsURLs": ["nats://127.0.0.1:1"], **values})


def test_default_is_half_the_lease_ttl() -> None:
    assert statement_timeout(_settings()) == LEASE_TTL_S / 2 < LEASE_TTL_S
    assert statement_timeout(_settings(), lease_ttl_s=10) == 5.0
    assert execution_options(_settings()).statement_timeout_s == LEASE_TTL_S / 2


def test_configured_value_is_used_when_below_the_ttl() -> None:
    settings = _settings(BatonRecoveryStatementTimeoutSeconds=1)
    assert statement_timeout(settings) == 1.0
    assert execution_options(settings).statement_timeout_s == 1.0
    assert RecoveryService(settings).statement_timeout_s == 1.0


@pytest.mark.parametrize("value", [LEASE_TTL_S, 600])
def test_a_value_not_below_the_ttl_is_refused(value: float) -> None:
    settings = _settings(BatonRecoveryStatementTimeoutSeconds=value)
    with pytest.raises(ConfigError, match="BatonRecoveryStatementTimeoutSeconds"):
        statement_timeout(settings)
    with pytest.raises(ConfigError, match="below the recovery lease TTL"):
        RecoveryService(settings)
    assert RecoveryService(settings, lease_ttl_s=700).statement_timeout_s == value


def test_waits_are_sliced_below_the_statement_timeout() -> None:
    creds = Credentials(user="u")
    fast = MySQLExecutor(ConnectionPool(), creds, creds, execution_options(_settings()))
    assert fast.slice_s == 0.5 < fast.options.statement_timeout_s
    short = execution_options(_settings(BatonRecoveryStatementTimeoutSeconds=0.4))
    assert MySQLExecutor(ConnectionPool(), creds, creds, short).slice_s == 0.2
