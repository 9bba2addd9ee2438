"""Cluster filter matching (RecoverMasterClusterFilters / RecoverIntermediateMasterClusterFilters),
table-driven against orchestrator's rules."""

from __future__ import annotations

import pytest

from libs.topology.filters import cluster_matches, matching_filter

CLUSTER, ALIAS = "db-1.dc1.example.com:3306", "orders"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([], None),  # opt-in: nothing configured, nothing recovered
        ([""], None),  # an empty entry matches nothing
        (["*"], "*"),
        ([CLUSTER], CLUSTER),  # exact cluster name
        ([ALIAS], ALIAS),  # exact alias
        (["alias=orders"], "alias=orders"),
        (["alias=order"], None),  # alias= is exact
        (["alias~=^ord"], "alias~=^ord"),
        (["alias~=ers$"], "alias~=ers$"),
        (["alias~=^ers"], None),
        (["alias~=dc1"], None),  # alias~= looks at the alias, not the name
        (["dc1"], "dc1"),  # a bare regex is searched in the cluster name
        (["^db-[0-9]+\\.dc1"], "^db-[0-9]+\\.dc1"),
        (["^dc1"], None),
        (["orders-eu", "alias~=^ord", "*"], "alias~=^ord"),  # first matching entry wins
        (["other:3306", "dc2"], None),
        (["["], None),  # a pattern that does not compile matches nothing (config validation refuses it)
    ],
)
def test_matching_filter(filters: list[str], expected: str | None) -> None:
    assert matching_filter(filters, CLUSTER, ALIAS) == expected
    assert cluster_matches(filters, CLUSTER, ALIAS) is (expected is not None)


def test_cluster_without_alias_matches_by_name_only() -> None:
    name = "127.0.0.1:23306"
    assert cluster_matches([name], name, name)
    assert not cluster_matches(["alias=orders"], name, name)
    assert cluster_matches(["127\\.0\\.0\\.1"], name, name)
