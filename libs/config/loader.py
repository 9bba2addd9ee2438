"""Load `Settings` from an orchestrator-style JSON file and `BATON_<Key>` environment variables.

Precedence, lowest first: built-in defaults < the JSON file < environment variables. Then, as in
orchestrator, a `...CredentialsConfigFile` (my.cnf style) overrides the matching user and password,
wherever those came from. A password, token or URL written as `${VAR}` is read from the environment
variable VAR (orchestrator does this for its two MySQL passwords; Baton for every secret).

What the loader promises:
- an unknown key loads anyway and logs one WARNING naming it, with a "did you mean X?" when a known key
  is close; a key written in other letter case (Go's decoder accepts `instancepollseconds`) is taken as
  the known key, with a WARNING; keys starting with `_`, `#` or `//` are comments and are skipped;
- orchestrator keys Baton does not use (`legacy.IGNORED_KEYS`) are logged once at INFO;
- a key Baton accepts but does not use (`usage.NOT_USED`) that the file or the environment sets logs a
  WARNING naming it and why, so that no setting is silently ignored;
- orchestrator's old names (`SlaveLagQuery`, `RecoveryPeriodBlockMinutes`, ...) are translated;
- every failure is a `ConfigError` with a one-line message naming the source and the key, e.g.
  `config /etc/baton.json: InstancePollSeconds: expected an integer, got "five"`; a secret's value is
  never part of a message.

Environment values are strings: for a string key the value is taken as is; for a boolean
`true/false/1/0/yes/no/on/off`; for a list of strings either a JSON array or a comma-separated list;
anything else (numbers, objects) is parsed as JSON. A `BATON_` variable whose name matches no key is
ignored, with a WARNING if it is close to a key's name (a likely typo).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from libs.config.baton import AuthToken, ConsulDataCenter
from libs.config.legacy import IGNORED_KEYS, RENAMED_KEYS, SCALED_KEYS
from libs.config.messages import describe, json_type, show
from libs.config.mycnf import read_mycnf
from libs.config.settings import Settings
from libs.config.usage import NOT_USED
from libs.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "BATON_"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_FIELDS: dict[str, Any] = dict(Settings.model_fields)
_BY_LOWER: dict[str, str] = {name.lower(): name for name in [*_FIELDS, *RENAMED_KEYS, *SCALED_KEYS]}
_KNOWN_NAMES = sorted({*_FIELDS, *RENAMED_KEYS, *SCALED_KEYS, *IGNORED_KEYS})
_CREDENTIAL_FILES = (
    ("MySQLTopologyCredentialsConfigFile", "MySQLTopologyUser", "MySQLTopologyPassword"),
    ("MySQLReplicationCredentialsConfigFile", "MySQLReplicationUser", "MySQLReplicationPassword"),
    ("MySQLOrchestratorCredentialsConfigFile", "MySQLOrchestratorUser", "MySQLOrchestratorPassword"),
)


def _secret_names(*models: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for model in models
        for name, field in model.model_fields.items()
        if field.annotation is SecretStr
    )


SECRET_KEYS = _secret_names(Settings, ConsulDataCenter, AuthToken)
"""Names of every key (top level or nested) whose value is a secret."""


def load_settings(path: str | Path | None, env: Mapping[str, str] = os.environ) -> Settings:
    """Build the Settings of this process from `path` (None: no file) and `env`. See the module doc."""
    env_used = any(name.startswith(ENV_PREFIX) for name in env)
    label = str(path) if path is not None else ("environment" if env_used else "defaults")
    sources: dict[str, str] = {}
    values: dict[str, Any] = {}
    if path is not None:
        for key, value in _canonical(_read_json(Path(path)), label).items():
            values[key] = value
            sources[key] = str(path)
    for key, (name, value) in _env_layer(env).items():
        values[key] = value
        sources[key] = f"${name}"
    _resolve_env_refs(values, env, sources, label)
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe(exc, sources, label, SECRET_KEYS)) from None
    for key in sorted(set(sources) & set(NOT_USED)):
        log.warning("config %s: %s is accepted but not used by Baton: %s", sources[key], key, NOT_USED[key])
    return _apply_credential_files(settings, sources, label)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"config {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path}: not UTF-8 text") from None

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                log.warning("config %s: key %s appears more than once; the last value wins", path, key)
            obj[key] = value
        return obj

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config {path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a JSON object at the top level, got {json_type(data)}")
    return data


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, _KNOWN_NAMES, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _canonical(raw: Mapping[str, Any], label: str) -> dict[str, Any]:
    """Map one layer's keys onto Settings' field names: aliases, letter case, ignored and unknown keys."""
    out: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    ignored: list[str] = []
    for key, value in raw.items():
        if key.startswith(("_", "#", "//")):
            continue
        name = key if key in _FIELDS or key in RENAMED_KEYS or key in SCALED_KEYS else None
        if name is None and key.lower() in _BY_LOWER:
            name = _BY_LOWER[key.lower()]
            log.warning("config %s: key %s taken as %s (fix the spelling)", label, key, name)
        if name is None:
            if key in IGNORED_KEYS:
                ignored.append(key)
            else:
                log.warning("config %s: unknown key %s ignored%s", label, key, _suggest(key))
            continue
        if name in RENAMED_KEYS:
            renamed[RENAMED_KEYS[name]] = name
            name = RENAMED_KEYS[name]
            if name in out and out[name] != value:
                raise ConfigError(f"config {label}: {key} and {name} are synonyms and disagree")
        elif name in SCALED_KEYS:
            target, factor = SCALED_KEYS[name]
            if target in raw:
                continue  # the current key wins over the legacy one
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"config {label}: {key}: expected an integer, got {show(value)}")
            name, value = target, value * factor
        elif name in renamed and out[name] != value:
            raise ConfigError(f"config {label}: {renamed[name]} and {name} are synonyms and disagree")
        out[name] = value
    if ignored:
        log.info("config %s: orchestrator keys not used by Baton: %s", label, ", ".join(sorted(ignored)))
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """`BATON_<Key>` variables as {field: (variable name, typed value)}; exact-case names win."""
    found: dict[str, tuple[str, Any]] = {}
    for name in sorted(env, key=lambda n: (n[len(ENV_PREFIX) :] not in _FIELDS, n)):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :]
        canonical = _BY_LOWER.get(key.lower())
        if canonical is None:
            close = difflib.get_close_matches(key, _KNOWN_NAMES, n=1, cutoff=0.8)
            if close:
                log.warning(
                    "environment: %s is not a config key (did you mean %s%s?)", name, ENV_PREFIX, close[0]
                )
            continue
        raw = env[name]
        if canonical in SCALED_KEYS:
            target, factor = SCALED_KEYS[canonical]
            if not raw.strip().isdigit():
                raise ConfigError(f"config ${name}: {canonical}: expected an integer, got {show(raw)}")
            canonical, value = target, int(raw) * factor
        else:
            canonical = RENAMED_KEYS.get(canonical, canonical)
            value = _from_env(canonical, name, raw)
        found.setdefault(canonical, (name, value))
    return found


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _from_env(key: str, name: str, raw: str) -> Any:
    annotation = _FIELDS[key].annotation
    if annotation in (str, SecretStr) or get_origin(annotation) is Literal:
        return raw
    if annotation is bool:
        word = raw.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else raw
    if get_origin(annotation) is list and get_args(annotation) == (str,) and not raw.lstrip().startswith("["):
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        if annotation in (int, float):
            return raw  # validation reports `expected an integer, got "five"`
        raise ConfigError(f"config ${name}: {key}: invalid JSON at column {exc.colno}: {exc.msg}") from None


def _resolve_env_refs(node: Any, env: Mapping[str, str], sources: Mapping[str, str], label: str) -> None:
    """Replace `${VAR}` secrets in place (dicts nested anywhere) by the variable's value."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(key, str) and key in SECRET_KEYS and isinstance(value, str):
            match = _ENV_REF.match(value)
            if match:
                if match.group(1) not in env:
                    where = sources.get(key, label)
                    raise ConfigError(
                        f"config {where}: {key}: environment variable {match.group(1)} is not set"
                    )
                node[key] = env[match.group(1)]
        elif isinstance(value, dict | list):
            _resolve_env_refs(value, env, sources, label)


def _apply_credential_files(settings: Settings, sources: Mapping[str, str], label: str) -> Settings:
    update: dict[str, Any] = {}
    for file_key, user_key, password_key in _CREDENTIAL_FILES:
        path: str = getattr(settings, file_key)
        if not path:
            continue
        creds = read_mycnf(path, key=f"config {sources.get(file_key, label)}: {file_key}")
        if creds.user is not None:
            update[user_key] = creds.user
        if creds.password is not None:
            update[password_key] = creds.password
    return settings.model_copy(update=update) if update else settings
