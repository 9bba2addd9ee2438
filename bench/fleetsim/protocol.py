"""The MySQL client/server protocol, server side, as far as Baton's driver (asyncmy) needs it.

Handshake v10 with `mysql_native_password` (MariaDB's `5.5.5-` version prefix), text-protocol COM_QUERY
answered with one result set or OK / ERR packet per statement of a multi-statement request
(`SERVER_MORE_RESULTS_EXISTS` between them, the first error ending the batch as a real server does),
COM_PING, COM_INIT_DB, COM_QUIT. Classic EOF packets (no CLIENT_DEPRECATE_EOF), no TLS, no compression.

mysql-mimic (PyPI; evaluated, not used) implements the same protocol but answers one result set per COM_QUERY
and parses every statement with sqlglot: Baton's probe is one multi-statement round trip, so the
simulator frames its packets itself (this module) and keeps the cost per probe small.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# column types
LONG = 3
LONGLONG = 8
DOUBLE = 5
VAR_STRING = 253

NOT_NULL = 1
UNSIGNED = 32
BINARY_FLAG = 128

CHARSET_UTF8MB4 = 45
CHARSET_BINARY = 63

SERVER_STATUS_AUTOCOMMIT = 0x0002
SERVER_MORE_RESULTS_EXISTS = 0x0008

COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_PING = 0x0E

CLIENT_LONG_PASSWORD = 0x1
CLIENT_FOUND_ROWS = 0x2
CLIENT_LONG_FLAG = 0x4
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_INTERACTIVE = 0x400
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_STATEMENTS = 0x10000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PS_MULTI_RESULTS = 0x40000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_ATTRS = 0x100000
CLIENT_PLUGIN_AUTH_LENENC = 0x200000

SERVER_CAPABILITIES = (
    CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC
)
AUTH_PLUGIN = b"mysql_native_password"


def lenenc_int(n: int) -> bytes:
    if n < 251:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n)
    if n < 1 << 24:
        return b"\xfd" + struct.pack("<I", n)[:3]
    return b"\xfe" + struct.pack("<Q", n)


def lenenc_str(b: bytes) -> bytes:
    return lenenc_int(len(b)) + b


def read_lenenc_int(data: bytes, at: int) -> tuple[int, int]:
    first = data[at]
    if first < 251:
        return first, at + 1
    if first == 0xFC:
        return struct.unpack_from("<H", data, at + 1)[0], at + 3
    if first == 0xFD:
        return int.from_bytes(data[at + 1 : at + 4], "little"), at + 4
    return struct.unpack_from("<Q", data, at + 1)[0], at + 9


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: int = VAR_STRING
    length: int = 0
    decimals: int = 0
    not_null: bool = False
    unsigned: bool = False

    def payload(self) -> bytes:
        charset = CHARSET_BINARY if self.type != VAR_STRING else CHARSET_UTF8MB4
        flags = (NOT_NULL if self.not_null else 0) | (UNSIGNED if self.unsigned else 0)
        if self.type != VAR_STRING:
            flags |= BINARY_FLAG
        name = self.name.encode()
        return (
            lenenc_str(b"def")
            + b"\x00\x00\x00"  # schema, table, org_table
            + lenenc_str(name)
            + b"\x00"  # org_name
            + b"\x0c"
            + struct.pack("<HIBHB", charset, self.length, self.type, flags, self.decimals)
            + b"\x00\x00"
        )


def string_col(name: str, length: int = 80, *, not_null: bool = True, decimals: int = 39) -> Column:
    return Column(name, VAR_STRING, length, decimals, not_null)


def int_col(
    name: str, length: int = 10, *, kind: int = LONG, not_null: bool = True, unsigned: bool = False
) -> Column:
    return Column(name, kind, length, 0, not_null, unsigned)


class ResultSet:
    """Columns (their definition packets built once per shape) and text rows."""

    __slots__ = ("_defs", "columns", "rows")

    def __init__(self, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
        self.columns = columns
        self.rows = rows
        self._defs: list[bytes] | None = None

    def definitions(self) -> list[bytes]:
        if self._defs is None:
            self._defs = _definitions(tuple(self.columns))
        return self._defs


_DEF_CACHE: dict[tuple[Column, ...], list[bytes]] = {}


def _definitions(cols: tuple[Column, ...]) -> list[bytes]:
    defs = _DEF_CACHE.get(cols)
    if defs is None:
        defs = [lenenc_int(len(cols))] + [c.payload() for c in cols]
        if len(_DEF_CACHE) < 4096:
            _DEF_CACHE[cols] = defs
    return defs


@dataclass(frozen=True, slots=True)
class Ok:
    affected_rows: int = 0
    warnings: int = 0


class SQLError(Exception):
    """An error a real server would answer with (errno, SQLSTATE, message)."""

    def __init__(self, errno: int, message: str, state: str = "HY000") -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message
        self.state = state


def text_value(v: Any) -> bytes:
    if v is None:
        return b"\xfb"
    if isinstance(v, bytes):
        return lenenc_str(v)
    if isinstance(v, float):
        return lenenc_str(repr(v).encode())
    return lenenc_str(str(v).encode())


def eof(status: int, warnings: int = 0) -> bytes:
    return b"\xfe" + struct.pack("<HH", warnings, status)


def ok(status: int, affected: int = 0, warnings: int = 0) -> bytes:
    return b"\x00" + lenenc_int(affected) + b"\x00" + struct.pack("<HH", status, warnings)


def err(errno: int, message: str, state: str = "HY000") -> bytes:
    return b"\xff" + struct.pack("<H", errno) + b"#" + state.encode()[:5] + message.encode()


def answer_payloads(answers: Sequence[ResultSet | Ok | SQLError]) -> list[bytes]:
    """The packets (payloads, unframed) answering one COM_QUERY of several statements."""
    out: list[bytes] = []
    last = len(answers) - 1
    for i, a in enumerate(answers):
        status = SERVER_STATUS_AUTOCOMMIT | (SERVER_MORE_RESULTS_EXISTS if i < last else 0)
        if isinstance(a, SQLError):
            out.append(err(a.errno, a.message, a.state))
            break
        if isinstance(a, Ok):
            out.append(ok(status, a.affected_rows, a.warnings))
            continue
        out.extend(a.definitions())
        out.append(eof(SERVER_STATUS_AUTOCOMMIT))
        for row in a.rows:
            out.append(b"".join(text_value(v) for v in row))
        out.append(eof(status))
    return out


def frame(payloads: Sequence[bytes], first_seq: int) -> bytes:
    parts = []
    seq = first_seq
    for p in payloads:
        # payloads here are far below 16 MiB: one packet each
        parts.append(struct.pack("<I", len(p))[:3] + bytes((seq & 0xFF,)) + p)
        seq += 1
    return b"".join(parts)


def handshake(conn_id: int, scramble: bytes, version: str) -> bytes:
    caps = SERVER_CAPABILITIES
    return (
        b"\x0a"
        + version.encode()
        + b"\x00"
        + struct.pack("<I", conn_id)
        + scramble[:8]
        + b"\x00"
        + struct.pack("<H", caps & 0xFFFF)
        + bytes((CHARSET_UTF8MB4,))
        + struct.pack("<H", SERVER_STATUS_AUTOCOMMIT)
        + struct.pack("<H", caps >> 16)
        + bytes((21,))
        + b"\x00" * 10
        + scramble[8:20]
        + b"\x00"
        + AUTH_PLUGIN
        + b"\x00"
    )


@dataclass(frozen=True)
class HandshakeResponse:
    capabilities: int
    user: str
    auth: bytes
    database: str


def parse_handshake_response(data: bytes) -> HandshakeResponse:
    caps = struct.unpack_from("<I", data, 0)[0]
    at = 32
    end = data.index(b"\x00", at)
    user = data[at:end].decode()
    at = end + 1
    if caps & CLIENT_PLUGIN_AUTH_LENENC:
        n, at = read_lenenc_int(data, at)
        auth = data[at : at + n]
        at += n
    elif caps & CLIENT_SECURE_CONNECTION:
        n = data[at]
        auth = data[at + 1 : at + 1 + n]
        at += 1 + n
    else:
        end = data.index(b"\x00", at)
        auth = data[at:end]
        at = end + 1
    database = ""
    if caps & CLIENT_CONNECT_WITH_DB and at < len(data):
        end = data.find(b"\x00", at)
        database = data[at : end if end >= 0 else len(data)].decode()
    return HandshakeResponse(caps, user, auth, database)


def native_password_ok(password: str, scramble: bytes, auth: bytes) -> bool:
    """mysql_native_password: auth == SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))."""
    if not password:
        return auth == b""
    h1 = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    h2 = hashlib.sha1(h1, usedforsecurity=False).digest()
    h3 = hashlib.sha1(scramble[:20] + h2, usedforsecurity=False).digest()
    return auth == bytes(a ^ b for a, b in zip(h1, h3, strict=True))
