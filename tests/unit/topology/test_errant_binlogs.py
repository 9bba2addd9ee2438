"""locate-gtid-errant's decision: which binary logs hold the errant transactions (both flavors)."""

from __future__ import annotations

import pytest

from libs.recovery.errant_binlogs import (
    BinlogHeader,
    ErrantPurged,
    locate_mariadb,
    locate_mysql,
    mariadb_errant_ranges,
)

U1 = "00000000-0000-0000-0000-000000000001"
U2 = "00000000-0000-0000-0000-000000000002"


def test_mariadb_ranges_follow_the_errant_rule() -> None:
    # master wrote 0-1-1..10; the replica (server 3) wrote 0-3-11 and 0-3-12 locally
    assert mariadb_errant_ranges("0-1-10,0-3-12", "0-1-10", {1}) == {(0, 3): (-1, 12)}
    assert mariadb_errant_ranges("0-1-10", "0-1-10", {1}) == {}
    # a server of the chain above is never errant (its writes may be in flight)
    assert mariadb_errant_ranges("0-1-11", "0-1-10", {1}) == {}
    # the master had some of server 3's transactions (an old switch): only the later ones are errant
    assert mariadb_errant_ranges("0-3-20", "0-3-15", {1}) == {(0, 3): (15, 20)}


LOGS = [
    BinlogHeader("b.000001", "[]"),
    BinlogHeader("b.000002", "[0-1-5]"),
    BinlogHeader("b.000003", "[0-1-8,0-3-9]"),
    BinlogHeader("b.000004", "[0-1-12,0-3-9]"),
]


@pytest.mark.parametrize(
    ("ranges", "position", "want"),
    [
        ({(0, 3): (-1, 9)}, "0-1-14,0-3-9", ["b.000002"]),  # written in the second log only
        ({(0, 3): (-1, 15)}, "0-1-14,0-3-15", ["b.000002", "b.000004"]),  # and again in the last
        ({}, "0-1-14", []),
        ({(0, 3): (9, 15)}, "0-1-14,0-3-15", ["b.000004"]),  # the master has up to 9
    ],
)
def test_mariadb_logs_holding_errant_seqs(
    ranges: dict[tuple[int, int], tuple[int, int]], position: str, want: list[str]
) -> None:
    assert locate_mariadb(ranges, LOGS, position) == want


def test_mariadb_errant_in_a_purged_log_is_refused() -> None:
    kept = LOGS[2:]  # the logs holding 0-3-9 are gone
    with pytest.raises(ErrantPurged, match="0-3-9"):
        locate_mariadb({(0, 3): (-1, 9)}, kept, "0-1-14,0-3-9")


MYSQL_LOGS = [
    BinlogHeader("m.000001", ""),
    BinlogHeader("m.000002", f"{U1}:1-5"),
    BinlogHeader("m.000003", f"{U1}:1-8,\n{U2}:1-2"),
]


@pytest.mark.parametrize(
    ("errant", "executed", "want"),
    [
        (f"{U2}:1-2", f"{U1}:1-9,{U2}:1-2", ["m.000002"]),
        (f"{U2}:1-3", f"{U1}:1-9,{U2}:1-3", ["m.000002", "m.000003"]),
        (f"{U2}:3", f"{U1}:1-9,{U2}:1-3", ["m.000003"]),
        ("", f"{U1}:1-9", []),
    ],
)
def test_mysql_logs_holding_errant_gtids(errant: str, executed: str, want: list[str]) -> None:
    headers = [BinlogHeader(h.name, h.previous.replace("\n", "")) for h in MYSQL_LOGS]
    assert locate_mysql(errant, headers, executed) == want


def test_mysql_errant_already_purged() -> None:
    with pytest.raises(ErrantPurged):
        locate_mysql(f"{U2}:1", MYSQL_LOGS[2:], f"{U1}:1-9,{U2}:1-3")
