"""GTID arithmetic, table-driven: MySQL sets and MariaDB positions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.models import Flavor
from libs.topology.gtid import (
    GtidSet,
    gtid_compare,
    mariadb_compare,
    mariadb_contains,
    mariadb_domain_seqs,
    mariadb_errant,
    more_up_to_date,
    mysql_errant,
    parse_mariadb,
)

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "4f22ab58-82db-22f2-af44-d91bb0530673"


@pytest.mark.parametrize(
    ("text", "canonical", "count"),
    [
        ("", "", 0),
        (f"{U1}:1-5", f"{U1}:1-5", 5),
        (f"{U1}:1-5:7", f"{U1}:1-5:7", 6),
        (f"{U1}:1-5:6-9", f"{U1}:1-9", 9),  # adjacent intervals merge
        (f"{U1}:3-4:1-5", f"{U1}:1-5", 5),  # overlapping, unsorted
        (f"{U2}:1-3,\n{U1.upper()}:1-2", f"{U1}:1-2,{U2}:1-3", 5),  # newlines, case, order
        (f"{U1}:1-3,{U1}:5", f"{U1}:1-3:5", 4),  # same uuid twice
        (f"{U1}:1-3:tag_a:1-2", f"{U1}:1-3,{U1}:tag_a:1-2", 5),  # 8.4 tagged GTIDs
    ],
)
def test_mysql_parse_and_format(text: str, canonical: str, count: int) -> None:
    gtids = GtidSet.parse(text)
    assert str(gtids) == canonical
    assert gtids.count() == count
    assert GtidSet.parse(str(gtids)) == gtids


@pytest.mark.parametrize(
    "bad", ["nonsense", f"{U1}", f"{U1}:", f"{U1}:5-3", f"{U1}:0-3", "abc:1-3", f"{U1}:1-x"]
)
def test_mysql_parse_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError, match="GTID"):
        GtidSet.parse(bad)


@pytest.mark.parametrize(
    ("left", "right", "union", "difference"),
    [
        (f"{U1}:1-10", f"{U1}:1-10", f"{U1}:1-10", ""),
        (f"{U1}:1-10", f"{U1}:3-5", f"{U1}:1-10", f"{U1}:1-2:6-10"),
        (f"{U1}:1-10", f"{U1}:1-12", f"{U1}:1-12", ""),
        (f"{U1}:1-10", f"{U2}:1-2", f"{U1}:1-10,{U2}:1-2", f"{U1}:1-10"),
        (f"{U1}:1-3:7-9", f"{U1}:2-8", f"{U1}:1-9", f"{U1}:1:9"),
        (f"{U1}:1-100,{U2}:1-2", f"{U1}:1-100", f"{U1}:1-100,{U2}:1-2", f"{U2}:1-2"),
        ("", f"{U1}:1", f"{U1}:1", ""),
    ],
)
def test_mysql_union_and_subtract(left: str, right: str, union: str, difference: str) -> None:
    a, b = GtidSet.parse(left), GtidSet.parse(right)
    assert str(a | b) == union
    assert str(a - b) == difference
    assert (a - b).is_empty() == (not difference)
    assert b.union(a) == a.union(b)
    assert a.contains(a - b)
    assert (a | b).contains(a) and (a | b).contains(b)


@pytest.mark.parametrize(
    ("replica", "master", "ignore", "errant"),
    [
        (f"{U1}:1-100", f"{U1}:1-100", (), ""),
        (f"{U1}:1-103", f"{U1}:1-100", (), f"{U1}:101-103"),  # skew looks errant without the chain...
        (f"{U1}:1-103", f"{U1}:1-100", (U1,), ""),  # ...and is not, with it
        (f"{U1}:1-100,{U2}:1-2", f"{U1}:1-100", (U1,), f"{U2}:1-2"),
        (f"{U1}:1-100,{U2}:1-2", f"{U1}:1-100,{U2}:1-2", (), ""),  # replicated from the master: fine
    ],
)
def test_mysql_errant(replica: str, master: str, ignore: tuple[str, ...], errant: str) -> None:
    assert str(mysql_errant(replica, master, ignore)) == errant


def test_mariadb_parse() -> None:
    assert parse_mariadb("0-1-100, 1-2-7") == ((0, 1, 100), (1, 2, 7))
    assert parse_mariadb("") == ()
    assert mariadb_domain_seqs("0-1-100,0-2-105,1-3-7") == {0: 105, 1: 7}
    for bad in ("0-1", "a-b-c", "0-1-2-3"):
        with pytest.raises(ValueError, match="MariaDB GTID"):
            parse_mariadb(bad)


@pytest.mark.parametrize(
    ("a", "b", "domains", "expected"),
    [
        ("0-1-100", "0-1-100", None, 0),
        ("0-1-101", "0-1-100", None, 1),
        ("0-2-101", "0-1-100", None, 1),  # seq decides, whichever server wrote it
        ("0-1-99", "0-1-100", None, -1),
        ("0-1-100,1-1-5", "0-1-100", None, 1),  # an extra domain is progress
        ("0-1-101,1-1-5", "0-1-100,1-1-6", None, None),  # diverged
        ("0-1-101,1-1-5", "0-1-100,1-1-6", [0], 1),  # only the replication domain counts
        ("", "", None, 0),
    ],
)
def test_mariadb_compare(a: str, b: str, domains: list[int] | None, expected: int | None) -> None:
    assert mariadb_compare(a, b, domains) == expected
    assert mariadb_contains(a, b, domains) == (expected in (0, 1))


@pytest.mark.parametrize(
    ("replica", "master", "ignore", "errant"),
    [
        ("0-1-100", "0-1-100", (), []),
        ("0-1-100,0-3-5", "0-1-100", (), ["0-3-5"]),  # a local write on server 3
        ("0-1-100,0-3-5", "0-3-5,0-1-100", (), []),  # the master has it (it came from there)
        ("0-1-100,0-3-7", "0-3-5,0-1-100", (), ["0-3-7"]),  # more from server 3 than the master saw
        ("0-1-105", "0-1-100", (), ["0-1-105"]),  # skew on the master's own stream...
        ("0-1-105", "0-1-100", (1,), []),  # ...ignored via the chain
        ("1-3-1", "0-1-100", (), ["1-3-1"]),  # a domain the master never had
        ("0-1-100,0-3-5", "0-1-100,0-3-5,0-3-2", (), []),  # entries combine by maximum
    ],
)
def test_mariadb_errant(replica: str, master: str, ignore: tuple[int, ...], errant: list[str]) -> None:
    assert mariadb_errant(replica, master, ignore) == errant


@pytest.mark.parametrize(
    ("a", "b", "flavor", "cmp", "ahead"),
    [
        (f"{U1}:1-10", f"{U1}:1-8", Flavor.MYSQL, 1, True),
        (f"{U1}:1-8", f"{U1}:1-10", Flavor.MYSQL, -1, False),
        (f"{U1}:1-10", f"{U1}:1-10", Flavor.MYSQL, 0, False),
        (f"{U1}:1-10,{U2}:1", f"{U1}:1-8,{U2}:1-5", Flavor.MYSQL, None, False),  # 11 < 13 transactions
        (f"{U1}:1-10,{U2}:1", f"{U1}:1-8", Flavor.MYSQL, 1, True),
        ("0-1-10", "0-1-8", Flavor.MARIADB, 1, True),
        ("0-1-10,1-1-1", "0-1-8,1-1-5", Flavor.MARIADB, None, False),  # +2 -4
    ],
)
def test_ordering(a: str, b: str, flavor: Flavor, cmp: int | None, ahead: bool) -> None:
    assert gtid_compare(a, b, flavor) == cmp
    assert more_up_to_date(a, b, flavor) is ahead
    if cmp is not None:
        assert gtid_compare(b, a, flavor) == (-cmp if cmp else 0)


_intervals = st.lists(st.tuples(st.integers(1, 60), st.integers(0, 10)), max_size=6).map(
    lambda xs: [(s, s + n) for s, n in xs]
)
_sets = st.dictionaries(st.sampled_from([U1, U2]), _intervals).map(GtidSet.from_mapping)


@given(_sets, _sets)
def test_set_algebra_matches_python_sets(a: GtidSet, b: GtidSet) -> None:
    def expand(g: GtidSet) -> set[tuple[str, int]]:
        return {(k, n) for k, ivs in g.items for s, e in ivs for n in range(s, e + 1)}

    assert expand(a - b) == expand(a) - expand(b)
    assert expand(a | b) == expand(a) | expand(b)
    assert a.contains(b) == (expand(b) <= expand(a))
    assert (a - b).count() == len(expand(a) - expand(b))
    assert GtidSet.parse(str(a)) == a
