"""MySQL/MariaDB access: dialects, the one-round-trip probe, pooled connections, and the fenced execute
(fenced.py) behind the replication commands (replication.py)."""

from libs.mysql.connection import ConnectionPool, Credentials, MySQLConnection, ProbeSettings, default_pool
from libs.mysql.dialect import Dialect, dialect_for, normalize_replication_row, parse_version
from libs.mysql.probe import probe, require_reachable

__all__ = [
    "ConnectionPool",
    "Credentials",
    "Dialect",
    "MySQLConnection",
    "ProbeSettings",
    "default_pool",
    "dialect_for",
    "normalize_replication_row",
    "parse_version",
    "probe",
    "require_reachable",
]
