"""libs/mysql/errant_sql.py: the statements that remove errant transactions, per flavor and version.

No MySQL server runs here, so the MySQL side is checked on the statements themselves (the MariaDB side
also runs for real in tests/integration/refactor/test_errant.py)."""

from __future__ import annotations

import pytest

from libs.mysql.dialect import dialect_for
from libs.mysql.errant_sql import (
    PLACEHOLDER_TABLE,
    describe,
    kept_gtid_state,
    mariadb_injection,
    mysql_injections,
    reset_binary_logs,
    reset_master_statements,
)
from libs.topology.gtid import MariadbGtid

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "00000000-0000-0000-0000-00000000000a"
MARIADB = "5.5.5-10.11.6-MariaDB-log"


@pytest.mark.parametrize(
    ("version", "want"),
    [
        (MARIADB, "RESET MASTER"),
        ("10.4.2-MariaDB", "RESET MASTER"),
        ("5.7.44-log", "RESET MASTER"),
        ("8.0.36", "RESET MASTER"),
        ("8.1.0", "RESET MASTER"),
        ("8.2.0", "RESET BINARY LOGS AND GTIDS"),
        ("8.4.3", "RESET BINARY LOGS AND GTIDS"),
        ("9.1.0", "RESET BINARY LOGS AND GTIDS"),
    ],
)
def test_reset_binary_logs_by_version(version: str, want: str) -> None:
    assert reset_binary_logs(dialect_for(version)) == want


@pytest.mark.parametrize(
    ("executed", "errant", "kept"),
    [
        # the replica's own transactions are removed, what it replicated is kept
        (f"{U1}:1-100,{U2}:1-3", f"{U2}:1-3", f"{U1}:1-100"),
        # a hole: only the errant part of one source
        (f"{U1}:1-100", f"{U1}:50", f"{U1}:1-49:51-100"),
        # tags (MySQL 8.4) stay with their source
        (f"{U1}:1-10,{U1}:ops:1-2", f"{U1}:ops:1-2", f"{U1}:1-10"),
        # everything errant: nothing kept
        (f"{U2}:1-2", f"{U2}:1-2", ""),
    ],
)
def test_mysql_kept_state_is_executed_minus_errant(executed: str, errant: str, kept: str) -> None:
    dialect = dialect_for("8.0.36")
    assert kept_gtid_state(dialect, executed=executed, slave_pos="", errant=errant) == kept


@pytest.mark.parametrize(
    ("version", "kept", "want"),
    [
        (
            "8.0.36",
            f"{U1}:1-100",
            [("RESET MASTER", ()), ("SET GLOBAL gtid_purged = %s", (f"{U1}:1-100",))],
        ),
        (
            "8.4.3",
            f"{U1}:1-100",
            [("RESET BINARY LOGS AND GTIDS", ()), ("SET GLOBAL gtid_purged = %s", (f"{U1}:1-100",))],
        ),
        ("5.7.44", "", [("RESET MASTER", ())]),  # nothing to keep: gtid_purged stays empty
        (
            MARIADB,
            "0-1-42,7-1-3",
            [("RESET MASTER", ()), ("SET GLOBAL gtid_binlog_state = %s", ("0-1-42,7-1-3",))],
        ),
        (MARIADB, "", [("RESET MASTER", ()), ("SET GLOBAL gtid_binlog_state = %s", ("",))]),
    ],
)
def test_reset_master_statements(version: str, kept: str, want: list[tuple[str, tuple[str, ...]]]) -> None:
    assert reset_master_statements(dialect_for(version), kept) == want


def test_mariadb_keeps_what_it_replicated() -> None:
    """MariaDB: gtid_binlog_state becomes gtid_slave_pos (none of the replica's own transactions)."""
    dialect = dialect_for(MARIADB)
    kept = kept_gtid_state(dialect, executed="ignored", slave_pos="0-1-42", errant="0-2-44")
    assert kept == "0-1-42"


def test_mysql_injection_one_session_sequence_per_gtid() -> None:
    sequences = mysql_injections(f"{U2}:3-4,{U1}:7")
    gtids = [seq[0][1][0] for seq in sequences]
    assert gtids == [f"{U2}:3", f"{U2}:4", f"{U1}:7"]  # every GTID of the set, one by one (sorted sources)
    for seq in sequences:
        assert [sql for sql, _ in seq] == [
            "SET GTID_NEXT = %s",
            "BEGIN",
            "COMMIT",
            "SET GTID_NEXT = 'AUTOMATIC'",
        ]
    assert mysql_injections("") == []
    tagged = mysql_injections(f"{U1}:ops:5")
    assert tagged[0][0] == ("SET GTID_NEXT = %s", (f"{U1}:ops:5",))


def test_mariadb_injection_is_one_statement_scoped_no_op() -> None:
    sql, params = mariadb_injection(MariadbGtid(77, 3, 12))
    assert params == ()
    assert sql == (
        f"SET STATEMENT gtid_domain_id=77, server_id=3, gtid_seq_no=12 FOR FLUSH TABLES {PLACEHOLDER_TABLE}"
    )
    assert ";" not in sql and "SESSION" not in sql  # nothing outlives the statement


def test_describe() -> None:
    assert describe([("RESET MASTER", ()), ("SET GLOBAL gtid_purged = %s", ("x:1",))]) == (
        "RESET MASTER; SET GLOBAL gtid_purged = 'x:1'"
    )
