"""my.cnf-style credential files (`MySQLTopologyCredentialsConfigFile` and friends).

orchestrator reads `user` and `password` from the `[client]` section of such a file, so that a password
need not sit in the JSON config. Baton reads the same files the same way, with MySQL's option-file
rules for values: surrounding single or double quotes are removed, and in an unquoted value a `#`
starts a comment. Keys and the section name are case-insensitive. Anything else in the file (other
sections, `!include`/`!includedir` lines (not followed), flags without a value) is ignored.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from libs.errors import ConfigError


class MyCnfCredentials(BaseModel):
    """The `[client]` user and password of a credentials file; a field is None when the file lacks it."""

    model_config = ConfigDict(frozen=True)

    user: str | None = None
    password: SecretStr | None = None


def _option_value(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    hash_at = value.find("#")
    if hash_at >= 0:
        value = value[:hash_at].rstrip()
    return value


def read_mycnf(path: str | Path, *, key: str = "credentials file") -> MyCnfCredentials:
    """Read `[client]` user/password from `path`.

    Raises ConfigError naming `key` (the config key that pointed at the file) when the file cannot be
    read or parsed, or has no `[client]` section. The error never contains the password.
    """
    parser = configparser.ConfigParser(
        allow_no_value=True,
        interpolation=None,
        strict=False,
        comment_prefixes=("#", ";"),
        inline_comment_prefixes=None,
        delimiters=("=",),
    )
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line for line in handle if not line.lstrip().startswith("!")]  # !include(dir)
        parser.read_string("".join(lines), source=str(path))
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(f"{key}: cannot read {path}: {reason}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    except configparser.Error as exc:
        # The parser's messages quote the offending line, which may hold the password: report only where.
        line = getattr(exc, "lineno", None)
        errors = getattr(exc, "errors", None)
        if line is None and errors:
            line = errors[0][0]
        where = f" (line {line})" if line else ""
        raise ConfigError(f"{key}: {path} is not a valid my.cnf-style file{where}") from None

    section = next((name for name in parser.sections() if name.lower() == "client"), None)
    if section is None:
        raise ConfigError(f"{key}: {path} has no [client] section")
    options = parser[section]
    user = options.get("user")
    password = options.get("password")
    return MyCnfCredentials(
        user=None if user is None else _option_value(user),
        password=None if password is None else SecretStr(_option_value(password)),
    )
