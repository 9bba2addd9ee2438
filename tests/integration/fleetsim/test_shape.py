"""The simulator answers Baton's probe as a real MariaDB 10.11 sandbox of the same shape does: the same
result sets (column names, types, NULLs) statement by statement, and snapshots equal field by field
wherever the value does not depend on the particular server (ports, ids, positions, timings)."""

from __future__ import annotations

from typing import Any

import asyncmy  # type: ignore[import-untyped]

from bench.fleetsim import ClusterShape, FleetSimulator
from libs.models import InstanceKey, InstanceSnapshot
from libs.mysql import ConnectionPool, Credentials, ProbeSettings, probe
from libs.mysql.dialect import dialect_for
from libs.mysql.probe import _core_statements
from libs.sandbox.spec import master_replicas
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.fleetsim.conftest import CREDS, FleetFactory, key

# Statements beyond the probe batch that Baton sends (libs.mysql.replication, the liveness watch).
EXTRA = (
    "SELECT @@global.read_only AS r",
    "SELECT @@global.gtid_binlog_pos AS p",
    "SELECT @@global.gtid_slave_pos AS p",
    "SELECT SLEEP(0) AS s",
    "SELECT MASTER_GTID_WAIT('0-1-1', 0.1) AS r",
    "SELECT 1",
    "SHOW ALL SLAVES STATUS",
)
# Snapshot fields whose values depend on the server (address, ids, positions, timing, host name).
VARYING = {
    "key",
    "probed_at",
    "latency_ms",
    "server_id",
    "hostname",
    "uptime_seconds",
    "gtid_current_pos",
    "gtid_slave_pos",
    "gtid_binlog_pos",
    "binlog_pos",
    "replicas",
    "version",
    "version_comment",
}
REPLICATION_VARYING = {
    "master",
    "master_server_id",
    "read_master_log_pos",
    "exec_master_log_pos",
    "relay_log_pos",
    "gtid_io_pos",
    "received_heartbeats",
}


async def describe(key: InstanceKey, creds: Credentials, statements: list[str]) -> list[dict[str, Any]]:
    """Per statement: its columns (name, type code, NULL-able) and, per row, which values are NULL."""
    conn = await asyncmy.connect(
        host=key.host,
        port=key.port,
        user=creds.user,
        password=creds.password.get_secret_value(),
        autocommit=True,
    )
    out = []
    try:
        for sql in statements:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                rows = await cur.fetchall()
                cols = [(d[0], d[1]) for d in (cur.description or [])]
                nulls = [tuple(v is None for v in row) for row in rows]
                kinds = [tuple(type(v).__name__ for v in row) for row in rows]
                out.append({"sql": sql, "columns": cols, "rows": len(rows), "nulls": nulls, "kinds": kinds})
    finally:
        conn.close()
    return out


def statements_for(version: str) -> list[str]:
    d = dialect_for(version)
    return [
        *_core_statements(d, ProbeSettings()),
        *_core_statements(d, ProbeSettings(discover_by_show_slave_hosts=False))[-1:],
        *EXTRA,
    ]


def comparable(snap: InstanceSnapshot) -> dict[str, Any]:
    data = snap.model_dump(mode="json")
    out = {k: v for k, v in data.items() if k not in VARYING}
    rep = out.get("replication")
    if rep is not None:
        out["replication"] = {k: v for k, v in rep.items() if k not in REPLICATION_VARYING}
    return out


async def test_probe_answers_have_the_shape_of_a_real_mariadb(
    sandbox_factory: SandboxFactory, fleet_factory: FleetFactory
) -> None:
    sb = await sandbox_factory(master_replicas(2))
    sim: FleetSimulator = await fleet_factory([ClusterShape(replicas=2)], write_rate=0.0)
    fleet = list(sim.fleet)
    real = {"master": sb.key("master"), "replica": sb.key("replica1")}
    fake = {"master": key(fleet[0].addr), "replica": key(fleet[1].addr)}
    pool = ConnectionPool()
    try:
        for role in ("master", "replica"):
            real_snap = await probe(real[role], sb.topology_creds, pool=pool)
            fake_snap = await probe(fake[role], CREDS, pool=pool)
            assert real_snap.reachable and fake_snap.reachable, (real_snap.error, fake_snap.error)
            statements = statements_for(real_snap.version)
            assert statements == statements_for(fake_snap.version)
            real_desc = await describe(real[role], sb.topology_creds, statements)
            fake_desc = await describe(fake[role], CREDS, statements)
            for r, f in zip(real_desc, fake_desc, strict=True):
                assert f["columns"] == r["columns"], f"{role}: {r['sql']}"
                assert f["rows"] == r["rows"], f"{role}: {r['sql']}"
                assert f["nulls"] == r["nulls"], f"{role}: {r['sql']}"
                assert f["kinds"] == r["kinds"], f"{role}: {r['sql']}"
            # the snapshot, field by field (the varying ones: same presence and type)
            r_all, f_all = real_snap.model_dump(mode="json"), fake_snap.model_dump(mode="json")
            assert set(r_all) == set(f_all)
            for name in r_all:
                assert (r_all[name] is None) == (f_all[name] is None), f"{role}: {name}"
                assert type(r_all[name]) is type(f_all[name]), f"{role}: {name}"
            assert comparable(fake_snap) == comparable(real_snap), role
            assert len(fake_snap.replicas) == len(real_snap.replicas)
            assert fake_snap.flavor is real_snap.flavor
            assert bool(fake_snap.gtid_binlog_pos) == bool(real_snap.gtid_binlog_pos)
            assert bool(fake_snap.gtid_slave_pos) == bool(real_snap.gtid_slave_pos)
            if role == "replica":
                assert fake_snap.replication is not None and real_snap.replication is not None
                assert fake_snap.replication.master == fake["master"]
    finally:
        pool.close()
