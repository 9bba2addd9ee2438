"""Which clusters opted in to automated recovery: orchestrator's cluster filter matching.

`RecoverMasterClusterFilters` / `RecoverIntermediateMasterClusterFilters` are lists of entries; a cluster
matches when any entry matches (orchestrator's `ClusterInfo.filtersMatchCluster`, same order):
- the exact cluster name (the master's `host:port`), or the exact alias;
- `alias=X`: the alias is exactly X;
- `alias~=REGEX`: the alias matches REGEX (searched, not anchored, as Go's `regexp.MatchString`);
- `*`: every cluster;
- anything else: a regex searched in the cluster name.
An empty list matches nothing: recovery is opt-in. Pure; patterns were validated when the config was
loaded (`libs/config/recovery.py`), a pattern that still does not compile matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _search(pattern: str, text: str) -> bool:
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(text) is not None


def matching_filter(filters: Sequence[str], cluster: str, alias: str) -> str | None:
    """The first entry of `filters` that matches the cluster, or None."""
    for entry in filters:
        if not entry:
            continue
        if entry in (cluster, alias):
            return entry
        if entry.startswith("alias="):
            if entry.removeprefix("alias=") == alias:
                return entry
        elif entry.startswith("alias~="):
            if _search(entry.removeprefix("alias~="), alias):
                return entry
        elif entry == "*" or _search(entry, cluster):
            return entry
    return None


def cluster_matches(filters: Sequence[str], cluster: str, alias: str) -> bool:
    return matching_filter(filters, cluster, alias) is not None
