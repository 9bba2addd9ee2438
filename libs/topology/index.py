"""A per-pass index of a `ClusterView`, keyed by `(host, port)` tuples.

Analysis touches every instance of the fleet on every tick, and hashing a pydantic `InstanceKey` costs
several times a plain tuple, so one pass over the view builds everything the analysis looks up: states,
each instance's master, each master's replicas, and the members of replication rings (co-masters).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from libs.models import InstanceKey, InstanceSnapshot, IOThreadState
from libs.topology.view import ClusterView, InstanceState

Token = tuple[str, int]


def token_of(key: InstanceKey) -> Token:
    return (key.host, key.port)


@dataclass(slots=True)
class ViewIndex:
    states: dict[Token, InstanceState] = field(default_factory=dict)
    parent: dict[Token, Token] = field(default_factory=dict)  # instance -> its master (as last seen)
    children: dict[Token, list[InstanceState]] = field(default_factory=dict)  # master -> its replicas
    rings: frozenset[Token] = frozenset()
    roots: list[InstanceState] = field(default_factory=list)  # no master of their own (as last seen)
    stalled: list[InstanceState] = field(default_factory=list)  # IO thread not running (as last seen)

    @classmethod
    def build(cls, view: ClusterView) -> ViewIndex:
        index = cls()
        states, parent, children = index.states, index.parent, index.children
        roots, stalled = index.roots, index.stalled
        for state in view.instances:
            key = state.key
            token = (key.host, key.port)
            states[token] = state
            seen = state.last_seen
            replication = (seen if seen is not None else state.last_probe).replication
            if replication is None or replication.master is None:
                roots.append(state)
                continue
            if replication.io_state is not IOThreadState.YES:
                stalled.append(state)
            master = (replication.master.host, replication.master.port)
            parent[token] = master
            siblings = children.get(master)
            if siblings is None:
                children[master] = [state]
            else:
                siblings.append(state)
        index.rings = _rings(parent, children)
        return index

    def candidates(self) -> Iterator[InstanceState]:
        """Each instance that may have a finding, once: top masters, masters with a master of their
        own (intermediate and co-masters), and leaves whose IO thread is down. Healthy leaves, most of
        a fleet, cannot have one (every problem needs replicas, no master, or a failing IO thread)."""
        yield from self.roots
        for token in self.children:
            if token in self.parent and token in self.states:
                yield self.states[token]
        for state in self.stalled:
            if (state.key.host, state.key.port) not in self.children:
                yield state

    def get(self, key: InstanceKey | None) -> InstanceState | None:
        return self.states.get((key.host, key.port)) if key is not None else None

    def chain(self, key: InstanceKey) -> list[InstanceSnapshot]:
        """`key`'s last known snapshot, then its master's, and so on up the view (stops on a ring)."""
        out: list[InstanceSnapshot] = []
        token: Token | None = (key.host, key.port)
        seen: set[Token] = set()
        while token is not None and token not in seen and token in self.states:
            seen.add(token)
            state = self.states[token]
            out.append(state.last_seen or state.last_probe)
            token = self.parent.get(token)
        return out

    def depth(self, key: InstanceKey) -> int:
        """0 for a top master, 1 for its replicas, ...; a ring counts its length (as `view.depth_of`)."""
        return len(self.chain(key)) - 1


def _rings(parent: dict[Token, Token], children: dict[Token, list[InstanceState]]) -> frozenset[Token]:
    # A ring member has a master and is a master, so only those need walking.
    candidates = {t: parent[t] for t in parent if t in children}
    walk_of: dict[Token, int] = {}
    members: set[Token] = set()
    for walk, start in enumerate(candidates):
        path: list[Token] = []
        cur: Token | None = start
        while cur is not None and cur not in walk_of:
            walk_of[cur] = walk
            path.append(cur)
            cur = candidates.get(cur)
        if cur is not None and walk_of[cur] == walk:
            members.update(path[path.index(cur) :])
    return frozenset(members)
