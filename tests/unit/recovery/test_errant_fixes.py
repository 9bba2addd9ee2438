"""libs/recovery/errant_fixes.py: the statements gtid-errant-reset-master and gtid-errant-inject-empty send,
in order, per dialect. No MySQL server runs here: a recording session stands in for `FencedSession`
and answers the reads (the MariaDB side runs for real in tests/integration/refactor/test_errant.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from libs.errors import ReplicationCommandError
from libs.models import InstanceKey
from libs.mysql.dialect import Dialect, dialect_for
from libs.mysql.fenced import FencedSession
from libs.recovery import errant_fixes

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "00000000-0000-0000-0000-00000000000a"
KEY = InstanceKey(host="r", port=3306)


class Recording:
    """Answers reads from `answers` (by statement prefix), records every statement sent."""

    def __init__(self, version: str, answers: dict[str, Any], replica: bool = True) -> None:
        self._dialect = dialect_for(version)
        self.answers, self.replica, self.key = answers, replica, KEY
        self.sent: list[str] = []
        self.sequences: list[list[str]] = []

    async def dialect(self) -> Dialect:
        return self._dialect

    async def read(self, sql: str, params: Sequence[Any] | None = None, *, what: str | None = None) -> Any:
        if sql.startswith("SHOW"):
            row = {
                "Master_Host": "m",
                "Master_Port": 3306,
                "Slave_IO_Running": "Yes",
                "Slave_SQL_Running": "Yes",
            }
            return [row] if self.replica else []
        value = next(v for prefix, v in self.answers.items() if sql.startswith(prefix))
        return [{"p": value}]

    async def scalar(self, sql: str, params: Sequence[Any] | None = None, *, what: str | None = None) -> Any:
        return (await self.read(sql, params))[0]["p"]

    async def write(self, sql: str, params: Sequence[Any] | None = None, **_: Any) -> int:
        self.sent.append(sql % tuple(repr(p) for p in params) if params else sql)
        return 0

    async def write_sequence(self, statements: Sequence[tuple[str, Sequence[Any]]], *, what: str) -> int:
        self.sequences.append(
            [sql % tuple(repr(p) for p in params) if params else sql for sql, params in statements]
        )
        return 0


def session(rec: Recording) -> FencedSession:
    return rec  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("version", "stop", "reset", "start"),
    [
        ("5.7.44-log", "STOP SLAVE", "RESET MASTER", "START SLAVE"),
        ("8.0.36", "STOP REPLICA", "RESET MASTER", "START REPLICA"),
        ("8.4.3", "STOP REPLICA", "RESET BINARY LOGS AND GTIDS", "START REPLICA"),
    ],
)
async def test_mysql_reset_master(version: str, stop: str, reset: str, start: str) -> None:
    rec = Recording(version, {"SELECT @@global.gtid_executed": f"{U1}:1-100,\n{U2}:1-2"})
    detail = await errant_fixes.reset_master(session(rec), f"{U2}:1-2")
    assert rec.sent == [stop, reset, f"SET GLOBAL gtid_purged = '{U1}:1-100'", start]
    assert detail == f"errant {U2}:1-2 removed: {reset}; SET GLOBAL gtid_purged = '{U1}:1-100'"


async def test_mariadb_reset_master_keeps_what_it_replicated() -> None:
    rec = Recording("10.11.6-MariaDB-log", {"SELECT @@global.gtid_slave_pos": "0-1-42"})
    await errant_fixes.reset_master(session(rec), "0-3-44")
    assert rec.sent == [
        "STOP SLAVE",
        "RESET MASTER",
        "SET GLOBAL gtid_binlog_state = '0-1-42'",
        "START SLAVE",
    ]


async def test_reset_master_starts_replication_again_when_the_reset_fails() -> None:
    rec = Recording("8.0.36", {"SELECT @@global.gtid_executed": f"{U1}:1-3"})
    sent = rec.sent

    async def failing(sql: str, params: Sequence[Any] | None = None, **_: Any) -> int:
        sent.append(sql)
        if sql.startswith("RESET"):
            raise ReplicationCommandError("RESET MASTER on r:3306 failed [1227]: denied")
        return 0

    rec.write = failing  # type: ignore[method-assign]
    with pytest.raises(ReplicationCommandError):
        await errant_fixes.reset_master(session(rec), f"{U1}:3")
    assert sent == ["STOP REPLICA", "RESET MASTER", "START REPLICA"]


async def test_mysql_injection_one_session_per_gtid() -> None:
    rec = Recording("8.0.36", {}, replica=False)
    replica = Recording("8.0.36", {})
    detail = await errant_fixes.inject_empty(session(rec), f"{U2}:1-2", session(replica))
    assert rec.sequences == [
        [f"SET GTID_NEXT = '{U2}:{n}'", "BEGIN", "COMMIT", "SET GTID_NEXT = 'AUTOMATIC'"] for n in (1, 2)
    ]
    assert rec.sent == [] and replica.sent == [] and detail.startswith("2 empty transactions injected")


@pytest.mark.parametrize(
    ("master_pos", "replica_pos", "refused"),
    [
        ("0-1-42", "0-1-42", None),
        ("0-1-45", "0-1-42", "logged seq 45 in domain 0 meanwhile"),
        ("0-1-43", "0-1-42", "logged seq 43 in domain 0, which the replica has not applied"),
    ],
)
async def test_mariadb_injection_rechecks_both_positions_first(
    master_pos: str, replica_pos: str, refused: str | None
) -> None:
    maria = "10.11.6-MariaDB-log"
    rec = Recording(maria, {"SELECT @@global.gtid_binlog_pos": master_pos}, replica=False)
    replica = Recording(maria, {"SELECT @@global.gtid_slave_pos": replica_pos})
    if refused:
        with pytest.raises(ReplicationCommandError, match=refused):
            await errant_fixes.inject_empty(session(rec), "0-3-44", session(replica))
        assert rec.sent == []
        return
    await errant_fixes.inject_empty(session(rec), "0-3-44,77-3-2", session(replica))
    assert [s.split(" FOR ")[0] for s in rec.sent] == [
        "SET STATEMENT gtid_domain_id=0, server_id=3, gtid_seq_no=44",
        "SET STATEMENT gtid_domain_id=77, server_id=3, gtid_seq_no=2",
    ]
    assert replica.sent == []


def test_injection_count() -> None:
    assert errant_fixes.injection_count(f"{U1}:1-3:7,{U2}:5", mariadb=False) == 5
    assert errant_fixes.injection_count("0-3-44,77-3-2", mariadb=True) == 2
