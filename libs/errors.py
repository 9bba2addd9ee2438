"""Baton's error tree.

Adapters translate their backend's exceptions into these at the edge, so loops and the CLI branch on a
small, stable set of types instead of on asyncmy, nats or consul internals.
"""

from __future__ import annotations


class BatonError(Exception):
    """Root of every error Baton raises on purpose. Its message is fit for an operator's eyes."""


class ConfigError(BatonError):
    """The configuration is invalid. The message names the offending key."""


class ProbeError(BatonError):
    """An instance could not be probed (unreachable, denied, timed out, or answered nonsense)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ReplicationCommandError(BatonError):
    """A replication command (CHANGE MASTER, START SLAVE, SET read_only, ...) failed on an instance."""


class BusError(BatonError):
    """NATS / JetStream could not be reached or refused an operation."""


class LeadershipLost(BatonError):
    """This process is no longer the recovery leader; it must stop acting at once."""


class KVError(BatonError):
    """A master-discovery KV store (Consul, ...) failed or refused a write."""


class StaleEpoch(KVError):
    """A write was refused because a newer fencing epoch already holds the value."""


class SandboxError(BatonError):
    """A sandbox topology could not be started, inspected or stopped."""
