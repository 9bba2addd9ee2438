"""The statements a simulated MariaDB 10.11 answers, and how, from the model (`bench.fleetsim.model`).

Covered (what `libs.mysql.probe`, `libs.mysql.replication`, the fenced session, the liveness watch and
orchestrator-style operator queries send; column names, types and NULLs as captured from a real
MariaDB 10.11 sandbox):
- `SELECT` of `@@[global.|session.]var [AS alias]`, numeric and string literals, `SLEEP(n)`,
  `MASTER_GTID_WAIT(pos[, timeout])`, `NOW()`, `DATABASE()`; `SELECT HOST FROM information_schema.PROCESSLIST`
  (binlog dump threads); `SELECT .. FROM meta.cluster` (orchestrator's documented DetectClusterAliasQuery
  table: the cluster's name); any other `FROM` -> 1146 (table doesn't exist), as on a server without it;
- `SHOW [GLOBAL|SESSION] STATUS|VARIABLES [LIKE '..' | WHERE Variable_name IN (..)]`, `SHOW MASTER STATUS`,
  `SHOW BINARY LOGS`, `SHOW SLAVE STATUS`, `SHOW ALL SLAVES STATUS`, `SHOW SLAVE HOSTS`, `SHOW PROCESSLIST`;
- writes that move the model: `STOP|START SLAVE [IO_THREAD|SQL_THREAD]`, `RESET SLAVE [ALL]`,
  `CHANGE MASTER TO ...`, `SET GLOBAL read_only|gtid_slave_pos|<any> = ..`, and harmless ones
  (`SET [SESSION] ..`, `SET NAMES`, `FLUSH ..`, `COMMIT`, `USE`, `DO ..`) answered OK;
- `SET STATEMENT max_statement_time=<s> FOR <stmt>` runs <stmt> (SLEEP / MASTER_GTID_WAIT end at <s> with
  1969 "Query execution was interrupted (max_statement_time exceeded)").
Anything else: 1064 syntax error naming the statement start (the simulator's honest "don't know").
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.fleetsim.model import (
    BINLOG_FILE,
    BINLOG_HEADER,
    DEAD,
    EVENT_BYTES,
    RELAY_LOG_FILE,
    UP,
    VERSION,
    VERSION_COMMENT,
    Fleet,
    Node,
    addr_text,
    gtid_text,
    parse_gtid,
)
from bench.fleetsim.protocol import (
    DOUBLE,
    LONG,
    LONGLONG,
    VAR_STRING,
    Column,
    Ok,
    ResultSet,
    SQLError,
    int_col,
    string_col,
)

Answer = ResultSet | Ok


@dataclass
class Deferred:
    """A statement that waits (SLEEP, MASTER_GTID_WAIT): awaited by the connection."""

    run: Callable[[], Awaitable[Answer]]


# --- columns, as MariaDB 10.11 sends them ---------------------------------------------------------
_SLAVE_STATUS_COLS: tuple[tuple[str, int, int], ...] = (
    ("Slave_IO_State", VAR_STRING, 120),
    ("Master_Host", VAR_STRING, 3064),
    ("Master_User", VAR_STRING, 1540),
    ("Master_Port", LONG, 7),
    ("Connect_Retry", LONG, 10),
    ("Master_Log_File", VAR_STRING, 2048),
    ("Read_Master_Log_Pos", LONGLONG, 10),
    ("Relay_Log_File", VAR_STRING, 2048),
    ("Relay_Log_Pos", LONGLONG, 10),
    ("Relay_Master_Log_File", VAR_STRING, 2048),
    ("Slave_IO_Running", VAR_STRING, 12),
    ("Slave_SQL_Running", VAR_STRING, 12),
    ("Replicate_Do_DB", VAR_STRING, 80),
    ("Replicate_Ignore_DB", VAR_STRING, 80),
    ("Replicate_Do_Table", VAR_STRING, 80),
    ("Replicate_Ignore_Table", VAR_STRING, 92),
    ("Replicate_Wild_Do_Table", VAR_STRING, 96),
    ("Replicate_Wild_Ignore_Table", VAR_STRING, 112),
    ("Last_Errno", LONG, 4),
    ("Last_Error", VAR_STRING, 80),
    ("Skip_Counter", LONG, 10),
    ("Exec_Master_Log_Pos", LONGLONG, 10),
    ("Relay_Log_Space", LONGLONG, 10),
    ("Until_Condition", VAR_STRING, 24),
    ("Until_Log_File", VAR_STRING, 2048),
    ("Until_Log_Pos", LONGLONG, 10),
    ("Master_SSL_Allowed", VAR_STRING, 28),
    ("Master_SSL_CA_File", VAR_STRING, 2048),
    ("Master_SSL_CA_Path", VAR_STRING, 2048),
    ("Master_SSL_Cert", VAR_STRING, 2048),
    ("Master_SSL_Cipher", VAR_STRING, 2048),
    ("Master_SSL_Key", VAR_STRING, 2048),
    ("Seconds_Behind_Master", LONGLONG, 10),
    ("Master_SSL_Verify_Server_Cert", VAR_STRING, 12),
    ("Last_IO_Errno", LONG, 4),
    ("Last_IO_Error", VAR_STRING, 80),
    ("Last_SQL_Errno", LONG, 4),
    ("Last_SQL_Error", VAR_STRING, 80),
    ("Replicate_Ignore_Server_Ids", VAR_STRING, 2048),
    ("Master_Server_Id", LONG, 8),
    ("Master_SSL_Crl", VAR_STRING, 2048),
    ("Master_SSL_Crlpath", VAR_STRING, 2048),
    ("Using_Gtid", VAR_STRING, 44),
    ("Gtid_IO_Pos", VAR_STRING, 120),
    ("Replicate_Do_Domain_Ids", VAR_STRING, 2048),
    ("Replicate_Ignore_Domain_Ids", VAR_STRING, 2048),
    ("Parallel_Mode", VAR_STRING, 48),
    ("SQL_Delay", LONG, 10),
    ("SQL_Remaining_Delay", LONG, 8),
    ("Slave_SQL_Running_State", VAR_STRING, 80),
    ("Slave_DDL_Groups", LONGLONG, 20),
    ("Slave_Non_Transactional_Groups", LONGLONG, 20),
    ("Slave_Transactional_Groups", LONGLONG, 20),
    ("Replicate_Rewrite_DB", VAR_STRING, 92),
)


def _cols(spec: tuple[tuple[str, int, int], ...]) -> tuple[Column, ...]:
    return tuple(
        Column(name, kind, length, 39 if kind == VAR_STRING else 0, not_null=True)
        for name, kind, length in spec
    )


SLAVE_STATUS = _cols(_SLAVE_STATUS_COLS)
_SQL_STATE_AT = [name for name, _, _ in _SLAVE_STATUS_COLS].index("Slave_SQL_Running_State")
ALL_SLAVES_STATUS = (
    _cols((("Connection_name", VAR_STRING, 256), ("Slave_SQL_State", VAR_STRING, 120)))
    + SLAVE_STATUS
    + _cols(
        (
            ("Retried_transactions", LONG, 10),
            ("Max_relay_log_size", LONGLONG, 10),
            ("Executed_log_entries", LONG, 10),
            ("Slave_received_heartbeats", LONG, 10),
            ("Slave_heartbeat_period", DOUBLE, 10),
            ("Gtid_Slave_Pos", VAR_STRING, 256),
        )
    )
)
MASTER_STATUS = (
    string_col("File", 2048),
    int_col("Position", 20, kind=LONGLONG),
    string_col("Binlog_Do_DB", 1020),
    string_col("Binlog_Ignore_DB", 1020),
)
BINARY_LOGS = (string_col("Log_name", 2048), int_col("File_size", 20, kind=LONGLONG))
SLAVE_HOSTS = (int_col("Server_id"), string_col("Host"), int_col("Port", 7), int_col("Master_id"))
NAME_VALUE = (string_col("Variable_name", 256, decimals=0), string_col("Value", 16384, decimals=0))
PROCESSLIST_HOST = (string_col("HOST", 256, decimals=0),)
PROCESSLIST = (
    int_col("Id", 21, kind=LONGLONG),
    string_col("User", 128, decimals=0),
    string_col("Host", 64, decimals=0),
    string_col("db", 64, decimals=0, not_null=False),
    string_col("Command", 16, decimals=0),
    int_col("Time", 7),
    string_col("State", 30, decimals=0, not_null=False),
    string_col("Info", 100, decimals=0, not_null=False),
    Column("Progress", 246, 7, 3, not_null=True),
)

# --- variables ------------------------------------------------------------------------------------
Getter = Callable[["Session", Node, float], Any]


def _num(v: bool | int) -> int:
    return int(v)


_INT_VARS: dict[str, tuple[int, Getter]] = {
    "server_id": (21, lambda s, n, t: n.server_id),
    "port": (5, lambda s, n, t: n.addr[1]),
    "report_port": (5, lambda s, n, t: n.report_port),
    "read_only": (1, lambda s, n, t: _num(n.read_only)),
    "log_bin": (1, lambda s, n, t: 1),
    "log_slave_updates": (1, lambda s, n, t: 1),
    "gtid_strict_mode": (1, lambda s, n, t: 1),
    "rpl_semi_sync_master_enabled": (1, lambda s, n, t: 0),
    "rpl_semi_sync_slave_enabled": (1, lambda s, n, t: 0),
    "gtid_domain_id": (10, lambda s, n, t: 0),
    "slave_net_timeout": (10, lambda s, n, t: int(s.fleet.slave_net_timeout)),
    "autocommit": (1, lambda s, n, t: 1),
    "max_allowed_packet": (10, lambda s, n, t: 16777216),
    "wait_timeout": (10, lambda s, n, t: 28800),
}
_STR_VARS: dict[str, Getter] = {
    "hostname": lambda s, n, t: s.fleet.hostname or n.addr[0],
    "report_host": lambda s, n, t: n.report_host or None,
    "version": lambda s, n, t: VERSION,
    "version_comment": lambda s, n, t: VERSION_COMMENT,
    "binlog_format": lambda s, n, t: "ROW",
    "binlog_row_image": lambda s, n, t: "FULL",
    "gtid_binlog_pos": lambda s, n, t: gtid_text(s.fleet.position(n, t)),
    "gtid_current_pos": lambda s, n, t: gtid_text(_current(s.fleet, n, t)),
    "gtid_slave_pos": lambda s, n, t: gtid_text(_slave_pos(s.fleet, n, t)),
    "log_bin_basename": lambda s, n, t: "/var/lib/mysql/mysql-bin",
    "time_zone": lambda s, n, t: "SYSTEM",
    "system_time_zone": lambda s, n, t: "UTC",
    "character_set_client": lambda s, n, t: "utf8mb4",
    "sql_mode": lambda s, n, t: (
        "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"
    ),
}


def _slave_pos(fleet: Fleet, n: Node, t: float) -> Any:
    if fleet.applying(n, t):
        return fleet.position(n, t)
    return n.slave_pos


def _current(fleet: Fleet, n: Node, t: float) -> Any:
    binlog = fleet.position(n, t)
    slave = _slave_pos(fleet, n, t)
    if slave is not None and slave[1] > binlog[1]:
        return slave
    return binlog


def _binlog_offset(seq: int) -> int:
    return BINLOG_HEADER + EVENT_BYTES * max(0, seq)


# --- statement parsing ------------------------------------------------------------------------------
_TIME_LIMIT = re.compile(r"^SET\s+STATEMENT\s+max_statement_time\s*=\s*([0-9.]+)\s+FOR\s+", re.I)
_WS = re.compile(r"\s+")
_VAR_ITEM = re.compile(r"^@@(?:(global|session|local)\.)?([a-z_0-9]+)$", re.I)
_ALIAS = re.compile(r"^(.*\S)\s+AS\s+([`'\"]?)([A-Za-z_][A-Za-z_0-9]*)\2$", re.I | re.S)
_FUNC = re.compile(r"^([a-z_]+)\s*\((.*)\)$", re.I | re.S)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_LIKE = re.compile(r"^LIKE\s+'((?:[^'\\]|\\.)*)'$", re.I)
_IN = re.compile(r"^WHERE\s+Variable_name\s+IN\s*\((.*)\)$", re.I | re.S)
_EQ = re.compile(r"^WHERE\s+Variable_name\s*=\s*'([^']*)'$", re.I)


def split_statements(sql: str) -> list[str]:
    """Split on `;` outside quotes; empty statements are dropped."""
    out: list[str] = []
    buf: list[str] = []
    quote = ""
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and i + 1 < len(sql):
                buf.append(sql[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif ch == ";":
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf).strip())
    return [s for s in out if s]


def split_items(text: str) -> list[str]:
    """Split a select list on top-level commas."""
    items: list[str] = []
    depth = 0
    quote = ""
    start = 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return items


def split_alias(item: str) -> tuple[str, str | None]:
    """`expr AS alias` -> (expr, alias); without AS -> (item, None)."""
    m = _ALIAS.match(item)
    if m is None:
        return item.strip(), None
    return m.group(1).strip(), m.group(3)


def unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        body = t[1:-1]
        return re.sub(r"\\(.)", r"\1", body).replace("''", "'")
    return t


def like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.I | re.S)


def _syntax(stmt: str) -> SQLError:
    near = stmt[:80]
    return SQLError(
        1064,
        "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server "
        f"version for the right syntax to use near '{near}' at line 1",
        "42000",
    )


class Session:
    """Executes statements for one connection to one simulated instance."""

    def __init__(self, fleet: Fleet, node: Node, clock: Callable[[], float] = time.monotonic) -> None:
        self.fleet: Fleet = fleet
        self.node: Node = node
        self.clock: Callable[[], float] = clock

    # --- entry ------------------------------------------------------------------------------------
    def execute(self, stmt: str) -> Answer | Deferred:
        limit = None
        m = _TIME_LIMIT.match(stmt)
        if m:
            limit = float(m.group(1))
            stmt = stmt[m.end() :]
        flat = _WS.sub(" ", stmt.strip()).rstrip(";").strip()
        upper = flat.upper()
        now = self.clock()
        if upper.startswith("SELECT "):
            return self._select(flat, now, limit)
        if upper.startswith("SHOW "):
            return self._show(flat, upper, now)
        return self._write(flat, upper, now)

    # --- SELECT -----------------------------------------------------------------------------------
    def _select(self, flat: str, now: float, limit: float | None) -> Answer | Deferred:
        body = flat[7:]
        upper = body.upper()
        if " FROM " in f" {upper} ":
            if "INFORMATION_SCHEMA.PROCESSLIST" in upper:
                return self._processlist_hosts(now)
            m = re.search(r"\bFROM\s+([`\w.]+)", body, re.I)
            table = (m.group(1) if m else "?").replace("`", "")
            if table.lower() == "meta.cluster":
                return self._meta_cluster(body[: m.start()] if m else body)
            if "." not in table:
                raise SQLError(1046, "No database selected", "3D000")
            raise SQLError(1146, f"Table '{table}' doesn't exist", "42S02")
        columns: list[Column] = []
        values: list[Any] = []
        waits: list[tuple[str, str]] = []
        for item in split_items(body):
            expr, alias = split_alias(item)
            col, value, wait = self._item(expr, alias or expr, now)
            columns.append(col)
            values.append(value)
            if wait is not None:
                waits.append((wait, col.name))
        if not waits:
            return ResultSet(columns, [values])
        return Deferred(lambda: self._waiting(body, columns, values, limit))

    def _meta_cluster(self, items: str) -> ResultSet:
        """orchestrator's documented DetectClusterAliasQuery table (`meta.cluster`): every selected
        expression answers the instance's cluster name."""
        cols = []
        for item in split_items(items.strip()):
            expr, alias = split_alias(item)
            cols.append(string_col(alias or expr, 4 * len(self.node.cluster), not_null=False))
        return ResultSet(cols, [[self.node.cluster] * len(cols)])

    def _item(self, expr: str, name: str, now: float) -> tuple[Column, Any, str | None]:
        vm = _VAR_ITEM.match(expr)
        if vm:
            return self._variable(vm.group(2).lower(), name, now)
        if _NUMBER.match(expr):
            if "." in expr:
                return Column(name, 246, len(expr), len(expr.split(".")[1]), not_null=True), expr, None
            return (
                int_col(name, max(1, len(expr)), kind=LONG if abs(int(expr)) < 2**31 else LONGLONG),
                int(expr),
                None,
            )
        if expr[:1] in ("'", '"'):
            value = unquote(expr)
            return string_col(name, max(0, len(value.encode())), decimals=39), value, None
        if expr.upper() == "NULL":
            return Column(name, 6, 0, 0, not_null=False), None, None
        fm = _FUNC.match(expr)
        if fm:
            fn = fm.group(1).upper()
            if fn == "SLEEP":
                return int_col(name, 1), 0, "sleep"
            if fn == "MASTER_GTID_WAIT":
                return int_col(name, 2), 0, "gtid_wait"
            if fn == "NOW":
                return Column(name, 12, 19, 0, not_null=True), time.strftime("%Y-%m-%d %H:%M:%S"), None
            if fn == "DATABASE":
                return string_col(name, 34, not_null=False), None, None
            if fn in ("CONNECTION_ID",):
                return int_col(name, 10, kind=LONGLONG), 1, None
            raise SQLError(1305, f"FUNCTION {fn.lower()} does not exist", "42000")
        raise _syntax(expr)

    def _variable(self, var: str, name: str, now: float) -> tuple[Column, Any, None]:
        n = self.node
        if var in n.variables:
            value = n.variables[var]
            return string_col(name, max(1, len(value)) * 4, not_null=False), value, None
        if var in _INT_VARS:
            length, get = _INT_VARS[var]
            return (
                int_col(name, length, kind=LONGLONG, not_null=False, unsigned=True),
                get(self, n, now),
                None,
            )
        if var in _STR_VARS:
            value = _STR_VARS[var](self, n, now)
            length = 4 * len(value) if isinstance(value, str) else 0
            return string_col(name, length, not_null=False), value, None
        raise SQLError(1193, f"Unknown system variable '{var}'")

    async def _waiting(
        self, body: str, columns: list[Column], values: list[Any], limit: float | None
    ) -> Answer:
        started = self.clock()
        deadline = None if limit is None else started + limit
        for i, item in enumerate(split_items(body)):
            expr, _ = split_alias(item)
            fm = _FUNC.match(expr)
            if not fm:
                continue
            fn = fm.group(1).upper()
            args = [unquote(a) for a in split_items(fm.group(2))]
            if fn == "SLEEP":
                seconds = float(args[0] or 0)
                end = started + seconds
                if deadline is not None and deadline < end:
                    await asyncio.sleep(max(0.0, deadline - self.clock()))
                    raise _interrupted()
                await asyncio.sleep(max(0.0, end - self.clock()))
                values[i] = 0
            elif fn == "MASTER_GTID_WAIT":
                target = parse_gtid(args[0]) if args else None
                wait_s = float(args[1]) if len(args) > 1 else None
                values[i] = await self._gtid_wait(target, wait_s, deadline)
        return ResultSet(columns, [values])

    async def _gtid_wait(
        self, target: tuple[int, int] | None, wait_s: float | None, deadline: float | None
    ) -> int:
        start = self.clock()
        while True:
            now = self.clock()
            mine = _slave_pos(self.fleet, self.node, now)
            if target is None or (mine is not None and mine[1] >= target[1]):
                return 0
            if wait_s is not None and now - start >= wait_s:
                return -1
            if deadline is not None and now >= deadline:
                raise _interrupted()
            await asyncio.sleep(0.05)

    # --- SHOW -------------------------------------------------------------------------------------
    def _show(self, flat: str, upper: str, now: float) -> Answer:
        f, n = self.fleet, self.node
        words = upper.split()
        rest = words[1:]
        if rest and rest[0] in ("GLOBAL", "SESSION", "LOCAL"):
            rest = rest[1:]
        if rest[:1] == ["STATUS"]:
            return self._name_value(self._status(now), flat)
        if rest[:1] == ["VARIABLES"]:
            return self._name_value(self._variables(now), flat)
        if upper == "SHOW MASTER STATUS":
            pos = f.position(n, now)
            return ResultSet(MASTER_STATUS, [(BINLOG_FILE, _binlog_offset(pos[1]), "", "")])
        if upper in ("SHOW BINARY LOGS", "SHOW MASTER LOGS"):
            pos = f.position(n, now)
            return ResultSet(BINARY_LOGS, [(BINLOG_FILE, _binlog_offset(pos[1]))])
        if upper == "SHOW SLAVE STATUS":
            row = self._slave_row(now)
            return ResultSet(SLAVE_STATUS, [row] if row else [])
        if upper == "SHOW ALL SLAVES STATUS":
            row = self._slave_row(now)
            if not row:
                return ResultSet(ALL_SLAVES_STATUS, [])
            extra = (
                0,
                1073741824,
                0,
                f.heartbeats(n, now),
                float(n.heartbeat_period),
                gtid_text(_slave_pos(f, n, now)),
            )
            sql_state = row[_SQL_STATE_AT]
            return ResultSet(ALL_SLAVES_STATUS, [("", sql_state, *row, *extra)])
        if upper == "SHOW SLAVE HOSTS":
            rows = [
                (r.server_id, r.report_host, r.report_port, n.server_id)
                for r in f.registered_replicas(n, now)
                if r.report_host
            ]
            return ResultSet(SLAVE_HOSTS, rows)
        if upper in ("SHOW PROCESSLIST", "SHOW FULL PROCESSLIST"):
            threads = [
                (
                    r.server_id,
                    "repl",
                    self._dump_host(r),
                    None,
                    "Binlog Dump",
                    0,
                    "Master has sent all binlog to slave; waiting for more updates",
                    None,
                    0.0,
                )
                for r in f.registered_replicas(n, now)
            ]
            return ResultSet(PROCESSLIST, threads)
        raise _syntax(flat[5:])

    def _name_value(self, values: dict[str, Any], flat: str) -> ResultSet:
        m = re.search(r"\b(STATUS|VARIABLES)\b\s*(.*)$", flat, re.I | re.S)
        cond = m.group(2).strip() if m else ""
        names = sorted(values)
        if cond:
            lm, im, em = _LIKE.match(cond), _IN.match(cond), _EQ.match(cond)
            if lm:
                rx = like_regex(lm.group(1))
                names = [k for k in names if rx.match(k)]
            elif im:
                wanted = {unquote(x).lower() for x in split_items(im.group(1))}
                names = [k for k in names if k.lower() in wanted]
            elif em:
                names = [k for k in names if k.lower() == em.group(1).lower()]
            else:
                raise _syntax(cond)
        return ResultSet(NAME_VALUE, [(k, _status_text(values[k])) for k in names])

    def _status(self, now: float) -> dict[str, Any]:
        f, n = self.fleet, self.node
        replica = n.master is not None
        io = f.io_view(n, now)
        return {
            "Uptime": int(max(0.0, now - n.started_at)),
            "Rpl_semi_sync_master_clients": 0,
            "Rpl_semi_sync_master_status": "OFF",
            "Rpl_semi_sync_slave_status": "OFF",
            "Slave_heartbeat_period": f"{n.heartbeat_period:.3f}" if replica else "0.000",
            "Slave_received_heartbeats": f.heartbeats(n, now) if replica else 0,
            "Slave_running": "ON" if replica and io.running == "Yes" and n.sql_on else "OFF",
            "Slaves_connected": len(f.registered_replicas(n, now)),
            "Threads_connected": 1,
        }

    def _variables(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (_, get) in _INT_VARS.items():
            v = get(self, self.node, now)
            out[name] = (
                "ON"
                if name in ("read_only", "log_bin", "log_slave_updates", "gtid_strict_mode") and v
                else (
                    "OFF" if name in ("read_only", "log_bin", "log_slave_updates", "gtid_strict_mode") else v
                )
            )
        for name, sget in _STR_VARS.items():
            v = sget(self, self.node, now)
            out[name] = "" if v is None else v
        out.update(self.node.variables)
        return out

    def _dump_host(self, r: Node) -> str:
        return f"{r.addr[0]}:{40000 + r.server_id % 20000}"

    def _processlist_hosts(self, now: float) -> ResultSet:
        return ResultSet(
            PROCESSLIST_HOST, [(self._dump_host(r),) for r in self.fleet.registered_replicas(self.node, now)]
        )

    def _slave_row(self, now: float) -> tuple[Any, ...] | None:
        f, n = self.fleet, self.node
        if n.master is None:
            return None
        io = f.io_view(n, now)
        applied = f.position(n, now)
        received = f.received_position(n, now)
        sql_running = n.sql_on
        io_state = {
            "Yes": "Waiting for master to send event",
            "Connecting": "Connecting to master"
            if io.errno == 0
            else "Reconnecting after a failed master event read",
            "No": "",
        }[io.running]
        read_pos = _binlog_offset(received[1])
        exec_pos = _binlog_offset(applied[1])
        relay_pos = 600 + EVENT_BYTES * max(0, applied[1])
        return (
            io_state,
            n.master[0],
            n.master_user,
            n.master[1],
            n.connect_retry,
            BINLOG_FILE,
            read_pos,
            RELAY_LOG_FILE,
            relay_pos,
            BINLOG_FILE,
            io.running,
            "Yes" if sql_running else "No",
            "",
            "",
            "",
            "",
            "",
            "",
            n.sql_errno,
            n.sql_error,
            0,
            exec_pos,
            relay_pos + (read_pos - exec_pos),
            "None",
            "",
            0,
            "No",
            "",
            "",
            "",
            "",
            "",
            f.seconds_behind(n, now),
            "No",
            io.errno,
            io.error,
            n.sql_errno,
            n.sql_error,
            "",
            n.master_server_id,
            "",
            "",
            n.using_gtid,
            gtid_text(received) if n.using_gtid != "No" else "",
            "",
            "",
            "optimistic",
            n.sql_delay,
            None,
            "Slave has read all relay log; waiting for more updates" if sql_running else "",
            0,
            0,
            max(0, applied[1]),
            "",
        )

    # --- writes -------------------------------------------------------------------------------------
    def _write(self, flat: str, upper: str, now: float) -> Answer:
        f, n = self.fleet, self.node
        if upper.startswith(("STOP SLAVE", "STOP REPLICA")):
            thread = upper.split()[2] if len(upper.split()) > 2 else ""
            f.settle_clusters(now, n)
            if thread in ("", "IO_THREAD"):
                n.io_on = False
            if thread in ("", "SQL_THREAD"):
                n.sql_on = False
            f.settle_clusters(now, n)
            return Ok()
        if upper.startswith(("START SLAVE", "START REPLICA")):
            if n.master is None:
                raise SQLError(
                    1200,
                    "Misconfigured slave: MASTER_HOST was not set; "
                    "Fix in config file or with CHANGE MASTER TO",
                )
            thread = upper.split()[2] if len(upper.split()) > 2 else ""
            f.settle_clusters(now, n)
            if thread in ("", "IO_THREAD"):
                n.io_on, n.io_errno, n.io_error = True, 0, ""
            if thread in ("", "SQL_THREAD"):
                n.sql_on, n.sql_errno, n.sql_error = True, 0, ""
            f.settle_clusters(now, n)
            return Ok()
        if upper.startswith(("RESET SLAVE", "RESET REPLICA")):
            self._stopped_or_raise()
            f.settle_clusters(now, n)
            if upper.endswith(" ALL"):
                f.set_master(n, None)
            n.io_errno, n.io_error, n.sql_errno, n.sql_error = 0, "", 0, ""
            n.received = (0, 0)
            return Ok()
        if upper.startswith("CHANGE MASTER TO"):
            self._stopped_or_raise()
            f.settle_clusters(now, n)
            self._change_master(flat[len("CHANGE MASTER TO") :], now)
            f.settle_clusters(now, n)
            return Ok()
        if upper.startswith(("SET GLOBAL ", "SET @@GLOBAL.")):
            body = flat.split(None, 2)[2] if upper.startswith("SET GLOBAL ") else flat[len("SET @@GLOBAL.") :]
            for item in split_items(body):
                name, _, value = item.partition("=")
                self._set_global(name.strip().lower().removeprefix("@@global."), unquote(value.strip()), now)
            return Ok()
        if upper.startswith(("SET ", "FLUSH ", "COMMIT", "ROLLBACK", "USE ", "DO ", "BEGIN", "KILL ")):
            return Ok()
        raise _syntax(flat)

    def _stopped_or_raise(self) -> None:
        n = self.node
        if n.master is not None and (n.io_on or n.sql_on):
            raise SQLError(
                1198,
                "This operation cannot be performed as you have a running slave ''; run STOP SLAVE '' first",
            )

    def _change_master(self, body: str, now: float) -> None:
        f, n = self.fleet, self.node
        opts: dict[str, str] = {}
        for item in split_items(body):
            k, _, v = item.partition("=")
            opts[k.strip().upper()] = unquote(v.strip())
        host = opts.get("MASTER_HOST", n.master[0] if n.master else "")
        port = int(opts.get("MASTER_PORT", str(n.master[1] if n.master else 3306)))
        if "MASTER_HOST" in opts or "MASTER_PORT" in opts:
            if not host:
                raise SQLError(1210, "Incorrect arguments to MASTER_HOST")
            f.set_master(n, (host, port))
            n.received = (0, 0) if "MASTER_PORT" in opts else n.received
        if "MASTER_USER" in opts:
            n.master_user = opts["MASTER_USER"]
        if "MASTER_CONNECT_RETRY" in opts:
            n.connect_retry = int(float(opts["MASTER_CONNECT_RETRY"]))
        if "MASTER_HEARTBEAT_PERIOD" in opts:
            n.heartbeat_period = float(opts["MASTER_HEARTBEAT_PERIOD"])
        if "MASTER_DELAY" in opts:
            n.sql_delay = int(opts["MASTER_DELAY"])
        if "MASTER_USE_GTID" in opts:
            n.using_gtid = {"slave_pos": "Slave_Pos", "current_pos": "Current_Pos", "no": "No"}.get(
                opts["MASTER_USE_GTID"].lower(), "Slave_Pos"
            )
        if n.master is None:
            raise SQLError(1210, "Incorrect arguments to MASTER_HOST")

    def _set_global(self, name: str, value: str, now: float) -> None:
        f, n = self.fleet, self.node
        if name == "read_only":
            on = value.upper() in ("1", "ON", "TRUE")
            if on != n.read_only:
                f.settle_clusters(now, n)
                n.read_only = on
                f.settle_clusters(now, n)
            return
        if name == "gtid_slave_pos":
            self._stopped_or_raise()
            n.slave_pos = parse_gtid(value)
            return
        if name in _INT_VARS or name in _STR_VARS:
            if name in (
                "server_id",
                "version",
                "hostname",
                "gtid_binlog_pos",
                "gtid_current_pos",
                "port",
                "log_bin",
            ):
                raise SQLError(1238, f"Variable '{name}' is a read only variable")
            return
        n.variables[name] = value


def _status_text(v: Any) -> str:
    return str(v)


def _interrupted() -> SQLError:
    return SQLError(1969, "Query execution was interrupted (max_statement_time exceeded)", "70100")


def describe(node: Node, fleet: Fleet, now: float) -> dict[str, Any]:
    """A JSON-able view of one instance (the control channel's `show`)."""
    io = fleet.io_view(node, now)
    return {
        "instance": node.key,
        "cluster": node.cluster,
        "server_id": node.server_id,
        "state": node.state,
        "read_only": node.read_only,
        "master": addr_text(node.master) if node.master else None,
        "io": io.running,
        "sql": "Yes" if node.sql_on else "No",
        "last_io_errno": io.errno,
        "last_sql_errno": node.sql_errno,
        "gtid_binlog_pos": gtid_text(fleet.position(node, now)),
        "lag_s": node.lag_s,
        "seconds_behind_master": fleet.seconds_behind(node, now),
        "heartbeats": fleet.heartbeats(node, now),
        "alive": node.state == UP,
        "dead": node.state == DEAD,
    }
