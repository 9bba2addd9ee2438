"""What one prober worker needs from the configuration, derived in one place from `Settings`.

The service, the CLI's `discover` and the benchmark all build their probe settings, credentials and
naming rules here, so a seed probed by the CLI is probed exactly as a worker would probe it.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from libs.config import Settings
from libs.config.derive import probe_settings, topology_credentials
from libs.mysql import Credentials, ProbeSettings
from libs.topology.naming import IgnoreFilters
from libs.topology.shards import DEFAULT_SHARD_COUNT
from services.prober.forget import forget_after


def ignore_filters(settings: Settings) -> IgnoreFilters:
    return IgnoreFilters.build(
        settings.DiscoveryIgnoreHostnameFilters,
        settings.DiscoveryIgnoreReplicaHostnameFilters,
        settings.DiscoveryIgnoreMasterHostnameFilters,
    )


def new_worker_id(node: str) -> str:
    """`<node>-<pid>-<random>`: unique per process, so a restarted worker never mistakes the lease of
    its previous life (still running out its TTL) for its own."""
    return f"{node}-{os.getpid()}-{secrets.token_hex(3)}"


class ProberConfig(BaseModel):
    """One worker's settings. Build from the config with `ProberConfig.from_settings`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    worker_id: str = Field(min_length=1)
    poll_s: float = Field(default=5.0, gt=0)  # InstancePollSeconds
    probe: ProbeSettings = ProbeSettings()
    credentials: Credentials
    shard_count: int = Field(default=DEFAULT_SHARD_COUNT, ge=1)
    lease_ttl_s: int = Field(default=3, ge=1)  # shard and heartbeat leases (whole seconds)
    round_s: float = Field(default=1.0, gt=0)  # how often the shard plan is re-evaluated
    hostname_method: str = "default"  # HostnameResolveMethod
    mysql_hostname_method: str = "@@hostname"  # MySQLHostnameResolveMethod
    seeds: tuple[str, ...] = ()  # DiscoverySeeds
    ignore: IgnoreFilters = IgnoreFilters()
    liveness_watch: bool = True  # keep a SELECT SLEEP() on every owned instance with replicas
    # The watch's SLEEP; one that has not answered liveness_margin_s after it should have is a sign (a
    # hung server) and the instance is probed at once. from_settings: InstancePollSeconds.
    liveness_sleep_s: int = Field(default=5, ge=1)
    liveness_margin_s: float = Field(default=1.0, gt=0)
    publish_timeout_s: float = Field(default=2.0, gt=0)
    # regular probes' snapshots awaiting their JetStream ack at most (0: each probe waits for its ack)
    publish_max_in_flight: int = Field(default=256, ge=0)
    stream_replicas: int = 1
    forget_unseen_after: timedelta | None = None  # UnseenInstanceForgetHours (None: never; see forget.py)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, worker_id: str | None = None, **overrides: object
    ) -> ProberConfig:
        values: dict[str, object] = {
            "worker_id": worker_id or new_worker_id(settings.BatonNodeName),
            "poll_s": float(settings.InstancePollSeconds),
            "liveness_sleep_s": max(1, int(settings.InstancePollSeconds)),
            "probe": probe_settings(settings),
            "credentials": topology_credentials(settings),
            "hostname_method": settings.HostnameResolveMethod,
            "mysql_hostname_method": settings.MySQLHostnameResolveMethod,
            "seeds": tuple(settings.DiscoverySeeds),
            "ignore": ignore_filters(settings),
            "stream_replicas": settings.BatonStreamReplicas,
            "forget_unseen_after": forget_after(settings.UnseenInstanceForgetHours),
        }
        values |= overrides
        return cls.model_validate(values)
