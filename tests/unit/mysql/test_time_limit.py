"""Server-side statement limits per dialect (Dialect.time_limited): MariaDB's SET STATEMENT
max_statement_time on every statement, MySQL's MAX_EXECUTION_TIME hint on SELECTs only."""

from __future__ import annotations

import pytest

from libs.mysql.dialect import dialect_for

MARIADB = dialect_for("5.5.5-10.11.6-MariaDB-log")
MYSQL = dialect_for("8.0.36")


@pytest.mark.parametrize(
    "sql",
    ["SELECT MASTER_GTID_WAIT(%s, %s) AS r", "STOP SLAVE", "SET GLOBAL read_only = 1", "SHOW SLAVE STATUS"],
)
def test_mariadb_limits_every_statement(sql: str) -> None:
    assert MARIADB.time_limited(sql, 1.5) == f"SET STATEMENT max_statement_time=1.500 FOR {sql}"


def test_mysql_limits_selects_only_with_the_hint() -> None:
    assert MYSQL.time_limited("SELECT @@global.gtid_executed AS p", 1.5) == (
        "SELECT /*+ MAX_EXECUTION_TIME(1500) */ @@global.gtid_executed AS p"
    )
    assert MYSQL.time_limited("select 1", 0.0004) == "SELECT /*+ MAX_EXECUTION_TIME(1) */ 1"
    for sql in ("STOP REPLICA", "SET GLOBAL read_only = 1", "SHOW REPLICA STATUS"):
        assert MYSQL.time_limited(sql, 1.5) == sql


def test_servers_without_a_limit_and_no_limit_leave_the_statement_alone() -> None:
    assert dialect_for("10.0.38-MariaDB").time_limited("STOP SLAVE", 1.5) == "STOP SLAVE"
    assert dialect_for("5.7.7").time_limited("SELECT 1", 1.5) == "SELECT 1"
    assert MARIADB.time_limited("STOP SLAVE", 0) == "STOP SLAVE"
