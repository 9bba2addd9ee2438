"""When may a probe-now requester stop waiting? (pure part of libs/bus/probe_now.py)"""

from __future__ import annotations

from libs.bus.probe_now import covered
from libs.models import InstanceKey, ProbeNowReply
from libs.topology.shards import shard_of


def K(text: str) -> InstanceKey:
    return InstanceKey.parse(text)


def test_covered_once_the_holders_of_every_requested_shard_answered() -> None:
    keys = [K(f"db{i}:3306") for i in range(6)]
    shards = {shard_of(k, 8) for k in keys}
    first = ProbeNowReply(worker="a", shard_count=8, shards=tuple(sorted(shards))[:1])
    rest = ProbeNowReply(worker="b", shard_count=8, shards=tuple(sorted(shards))[1:])
    idle = ProbeNowReply(worker="c", shard_count=8, shards=())
    assert not covered(keys, [])
    assert not covered(keys, [idle])
    assert not covered(keys, [first]) or len(shards) == 1
    assert covered(keys, [first, rest])
    assert covered(keys, [idle, rest, first])
