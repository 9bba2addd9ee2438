"""Re-reading the config file while a service runs (orchestrator's `reload-configuration`; SIGHUP).

A running service keeps the `Settings` it started with; most of them shape long-lived objects
(connections, pools, leases, streams, listeners, worker counts), so changing them needs a restart.
A few are read afresh at each use; those can change live. `ConfigSource.reload()` reads the file (and
the `BATON_*` environment) again with the same loader as at start, so a bad file is a `ConfigError`
naming the key and the running settings stay as they were; then it compares old and new settings key
by key and tells which changed keys were applied live and which need a restart (logged as a WARNING).

Which keys are live is per service (`LIVE_KEYS`): a service that applies some of them registers a
listener (`ConfigSource.listen`) that receives the new settings. A service with no listener applies
nothing live: every changed key is reported as needing a restart, so the answer is never "reloaded"
for a setting that did not take effect.

`service_main` installs one `ConfigSource` per process (`install`) and re-reads on SIGHUP; the API's
`/api/reload-configuration` calls the same `reload()`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from libs.config.loader import SECRET_KEYS, load_settings
from libs.config.settings import Settings

log = logging.getLogger(__name__)

# Keys each service reads at each use (after a reload its listener swaps them in).
LIVE_KEYS: Mapping[str, frozenset[str]] = {
    # The API reads these per request: cluster filters (ClusterInfo), lag and analysis parameters
    # (Instance, replication-analysis), promotion-rule expiry, discover's fallback probe credentials,
    # and every authentication key (tokens, users, ReadOnly) — so a token can be rotated without a
    # restart. Its listener recomputes the analysis parameters from the new settings.
    "api": frozenset(
        {
            "RecoverMasterClusterFilters",
            "RecoverIntermediateMasterClusterFilters",
            "ReasonableReplicationLagSeconds",
            "ReasonableInstanceCheckSeconds",
            "ReasonableLockedSemiSyncMasterSeconds",
            "InstancePollSeconds",
            "RecoverNonWriteableMaster",
            "EnforceExactSemiSyncReplicas",
            "BatonHeartbeatPeriodsSilent",
            "CandidateInstanceExpireMinutes",
            "MySQLTopologyUser",
            "MySQLTopologyPassword",
            "AuthenticationMethod",
            "HTTPAuthUser",
            "HTTPAuthPassword",
            "PowerAuthUsers",
            "PowerAuthGroups",
            "AuthUserHeader",
            "BatonAuthTokens",
            "ReadOnly",
        }
    ),
}

Listener = Callable[[Settings], None]


@dataclass(frozen=True)
class ReloadResult:
    settings: Settings
    applied: tuple[str, ...] = ()  # changed keys now in effect
    restart: tuple[str, ...] = ()  # changed keys that take effect only after a restart

    def summary(self) -> str:
        if not self.applied and not self.restart:
            return "no setting changed"
        parts = []
        if self.applied:
            parts.append("applied live: " + ", ".join(self.applied))
        if self.restart:
            parts.append("needs a restart: " + ", ".join(self.restart))
        return "; ".join(parts)


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The top-level keys whose values differ (secrets compared by value, never shown)."""
    before, after = _values(old), _values(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _values(settings: Settings) -> dict[str, Any]:
    out = settings.model_dump(mode="python")
    for key in SECRET_KEYS & out.keys():
        value = getattr(settings, key)
        out[key] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return out


def split_changes(changed: list[str], live: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(applied live, needs a restart) for a service whose live keys are `live`."""
    return tuple(k for k in changed if k in live), tuple(k for k in changed if k not in live)


@dataclass
class ConfigSource:
    """Where this process's settings came from, to read them again."""

    service: str
    path: str | None
    current: Settings
    overrides: Callable[[Settings], Settings] = lambda s: s  # e.g. --nats, applied again after reading
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    listeners: list[Listener] = field(default_factory=list)

    def listen(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def live_keys(self) -> frozenset[str]:
        return LIVE_KEYS.get(self.service, frozenset()) if self.listeners else frozenset()

    def reload(self) -> ReloadResult:
        """Read the config again; apply the live keys through the listeners. ConfigError on a bad file
        (nothing changes)."""
        new = self.overrides(load_settings(self.path, self.env))
        applied, restart = split_changes(changed_keys(self.current, new), self.live_keys())
        if applied:
            # the running settings take the new live values only; the rest waits for a restart
            self.current = self.current.model_copy(update={k: getattr(new, k) for k in applied})
            for listener in self.listeners:
                listener(self.current)
        result = ReloadResult(self.current, applied, restart)
        if restart:
            log.warning(
                "config %s reloaded: %s changed but take effect only after a restart of the %s",
                self.path or "(environment)",
                ", ".join(restart),
                self.service,
            )
        log.info("config %s reloaded: %s", self.path or "(environment)", result.summary())
        return result


_SOURCE: ConfigSource | None = None


def install(source: ConfigSource | None) -> None:
    """Make `source` this process's config source (service_main does it; None removes it)."""
    global _SOURCE
    _SOURCE = source


def current_source() -> ConfigSource | None:
    return _SOURCE
