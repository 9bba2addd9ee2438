"""The master-discovery store interface: where applications look up a cluster's master.

One adapter per backend (`libs/kv/consul.py`, later others) implements `MasterKVStore`. Every
publish is atomic (readers see the old master or the new one, never a mix) and fenced (a value
written under a newer epoch is never replaced by one from an older epoch). Adapters raise only
`KVError` (backend unreachable, timed out, refused) and its subclass `StaleEpoch`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from libs.models.events import MasterRecord


class PublishedMaster(BaseModel):
    """What a store holds for one cluster alias, read in one consistent snapshot."""

    model_config = ConfigDict(frozen=True)

    alias: str
    key: str  # `<prefix><alias>`
    value: str | None  # `host:port`, None if the main key is absent
    subkeys: dict[str, str] = {}  # hostname/port/ipv4/ipv6 (and the epoch key) by sub-key name
    epoch: int | None  # None: no Baton epoch stored (never published by Baton, or by orchestrator)
    index: int  # the store's version of the epoch key (Consul ModifyIndex), 0 if absent


class PublishOutcome(StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"  # the store already held exactly this record's keys under this epoch


class PublishResult(BaseModel):
    """The outcome of one `publish_master`, fit for a `kv.published` event."""

    model_config = ConfigDict(frozen=True)

    outcome: PublishOutcome
    key: str
    value: str
    epoch: int
    index: int  # the epoch key's version after the publish
    previous_value: str | None
    previous_epoch: int | None
    attempts: int  # read+write rounds (>1 when a concurrent writer won a round)


@runtime_checkable
class MasterKVStore(Protocol):
    """A place applications discover masters in. One instance talks to one data center's store."""

    @property
    def datacenter(self) -> str: ...

    async def read_cluster(self, prefix: str, alias: str) -> PublishedMaster | None:
        """The keys of `alias` under `prefix`, or None if neither the value nor the epoch exists."""
        ...

    async def publish_master(self, record: MasterRecord, prefix: str) -> PublishResult:
        """Write the record's keys atomically, unless a newer epoch is stored (→ `StaleEpoch`)."""
        ...

    async def close(self) -> None: ...
