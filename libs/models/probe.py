"""The probe-now protocol on `baton.probe.now` (core NATS, scatter/gather).

A requester (the analyzer when a master stops answering, the API, the CLI) publishes a
`ProbeNowRequest` with a reply inbox. Every prober worker answers with a `ProbeNowReply`: the shards it
holds and fresh snapshots of the requested instances that fall in them. The requester stops waiting once
the holders of every requested instance's shard have answered (or its deadline passes), so it needs no
knowledge of who owns what, and no queue group hides a worker.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from libs.models.instance import InstanceKey, InstanceSnapshot


class ProbeNowRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    instances: tuple[InstanceKey, ...] = Field(min_length=1)
    reason: str = ""  # why the requester wants fresh data (logged, traced)
    # every worker probes them, whatever shards it holds: their shards' holders did not answer (a worker
    # cut off, its leases not yet seen to lapse); the answer is not published, only returned
    anyone: bool = False


class ProbeNowReply(BaseModel):
    model_config = ConfigDict(frozen=True)

    worker: str
    shard_count: int
    shards: tuple[int, ...]  # the shards this worker holds right now
    snapshots: tuple[InstanceSnapshot, ...] = ()
