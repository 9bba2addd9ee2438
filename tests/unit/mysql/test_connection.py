from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from libs.mysql.connection import Credentials, MySQLError, ProbeSettings, one_line, translate


def test_credentials_never_print_the_password() -> None:
    creds = Credentials(user="baton", password=SecretStr("s3cret-pw"))
    for text in (repr(creds), str(creds), creds.model_dump_json(), f"{creds}"):
        assert "s3cret-pw" not in text
    assert creds.password.get_secret_value() == "s3cret-pw"
    with pytest.raises(ValidationError):
        Credentials(user="")


def test_probe_settings_defaults_follow_orchestrator_and_validate() -> None:
    s = ProbeSettings()
    assert (s.connect_timeout, s.read_timeout) == (2.0, 10.0)
    assert s.discover_by_show_slave_hosts
    assert s.replication_lag_query is None
    with pytest.raises(ValidationError):
        ProbeSettings(connect_timeout=0)


class _DriverError(Exception):
    """Shaped like asyncmy's errors: args = (errno, message)."""


@pytest.mark.parametrize(
    ("exc", "connecting", "code", "fragment"),
    [
        (
            _DriverError(1045, "Access denied for user 'baton'@'127.0.0.1' (using password: YES)"),
            True,
            1045,
            "Access denied",
        ),
        (
            _DriverError(2003, "Can't connect to MySQL server on '127.0.0.1'\n([Errno 111] refused)"),
            True,
            2003,
            "refused",
        ),
        (TimeoutError(), True, 2003, "connect timeout"),
        (TimeoutError(), False, 2013, "read timeout"),
        (ConnectionResetError("reset by peer"), False, 2013, "reset by peer"),
        (ConnectionRefusedError("refused"), True, 2003, "refused"),
        (RuntimeError("odd"), False, None, "RuntimeError: odd"),
    ],
)
def test_translate(exc: BaseException, connecting: bool, code: int | None, fragment: str) -> None:
    err = translate(exc, connecting=connecting)
    assert err.code == code
    assert fragment in err.message
    assert "\n" not in err.message


def test_translate_scrubs_the_secret_and_keeps_mysql_errors() -> None:
    err = translate(_DriverError(1064, "near 'hunter2' at line 1"), secret="hunter2")
    assert "hunter2" not in err.message and "**********" in err.message
    same = MySQLError(1, "x")
    assert translate(same) is same


def test_one_line_collapses_and_truncates() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 300
