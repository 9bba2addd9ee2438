"""Which data centers this process serves, and the stores for them, from Settings and the CLI.

`--dc NAME` (repeatable) picks data centers from `Settings.consul_data_centers()`; none picks all of
them. A name that is not configured is a ConfigError naming the known ones, so a typo fails at start
instead of silently publishing nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from libs.config import ConsulDataCenter, Settings
from libs.errors import ConfigError
from libs.kv.consul import DEFAULT_TIMEOUT, ConsulKVStore

DEFAULT_RECONCILE_SECONDS = 30.0
RECONCILE_KEY = "BatonKVReconcileSeconds"  # not (yet) a Settings field: read when present


def select_data_centers(settings: Settings, wanted: Sequence[str]) -> dict[str, ConsulDataCenter]:
    """The configured Consul per data center, restricted to `wanted` when given."""
    configured = settings.consul_data_centers()
    if not configured:
        raise ConfigError(
            "no Consul configured: set BatonConsulDataCenters (or ConsulAddress for a single DC)"
        )
    if not wanted:
        return configured
    unknown = [name for name in wanted if name not in configured]
    if unknown:
        raise ConfigError(
            f"data center(s) {', '.join(unknown)} not in BatonConsulDataCenters "
            f"(configured: {', '.join(sorted(configured))})"
        )
    return {name: configured[name] for name in dict.fromkeys(wanted)}


def reconcile_seconds(settings: Settings, override: float | None) -> float:
    """The CLI flag, else BatonKVReconcileSeconds once Settings has it, else 30 s."""
    value = override if override is not None else getattr(settings, RECONCILE_KEY, None)
    seconds = float(value) if value is not None else DEFAULT_RECONCILE_SECONDS
    if seconds <= 0:
        raise ConfigError(f"{RECONCILE_KEY}: must be > 0, got {seconds:g}")
    return seconds


def build_stores(
    data_centers: dict[str, ConsulDataCenter], *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, ConsulKVStore]:
    """One Consul adapter per data center (the ACL token stays inside the adapter)."""
    return {
        name: ConsulKVStore(dc.Address, datacenter=name, token=dc.AclToken, scheme=dc.Scheme, timeout=timeout)
        for name, dc in data_centers.items()
    }
