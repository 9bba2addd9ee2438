"""libs/topology/errant_inject.py: when a replica's errant MariaDB GTIDs may be logged on the master
(table-driven; the rules are in the module docstring)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from libs.models import Flavor, InstanceKey, InstanceSnapshot
from libs.topology.errant_inject import mariadb_injections, still_injectable
from libs.topology.gtid import MariadbGtid

NOW = datetime(2026, 1, 1, tzinfo=UTC)
M, R = InstanceKey(host="m", port=3306), InstanceKey(host="r", port=3306)


def snap(key: InstanceKey, **kw: Any) -> InstanceSnapshot:
    values: dict[str, Any] = {
        "key": key,
        "probed_at": NOW,
        "reachable": True,
        "server_id": 1 if key == M else 3,
        "version": "10.11.6-MariaDB-log",
        "flavor": Flavor.MARIADB,
        "log_bin": True,
        "log_slave_updates": True,
        **kw,
    }
    return InstanceSnapshot.model_validate(values)


SEQ_PASSED = (
    "gtid-errant-inject-empty will not operate on r:3306: m:3306 already logged seq {at} in domain 0, and "
    "MariaDB orders GTIDs within a domain, so {gtid} cannot be logged there after it: use "
    "gtid-errant-reset-master"
)
NOT_APPLIED = (
    "gtid-errant-inject-empty will not operate on r:3306: m:3306 logged domain 0 up to seq 43, which "
    "r:3306 has not applied (its own 0-3-44 is ahead of them, so with gtid_strict_mode it cannot): use "
    "gtid-errant-reset-master"
)
FOREIGN = (
    "gtid-errant-inject-empty will not operate on r:3306: its errant GTID 0-9-44 was logged under server_id "
    "9, not its own (3); injected on m:3306 it would replicate back to r:3306 and be applied there a second "
    "time: use gtid-errant-reset-master"
)


@pytest.mark.parametrize(
    ("master_pos", "slave_pos", "errant", "want", "refused"),
    [
        # a stray write in domain 0 right after what it replicated: the master has not moved on
        ("0-1-42", "0-1-42", "0-3-44", ["0-3-44"], None),
        # its own domain: the master never wrote there
        ("0-1-42", "0-1-42", "77-3-2", ["77-3-2"], None),
        # two domains: the last GTID of each, in domain order
        ("0-1-42,5-1-9", "0-1-42,5-1-9", "77-3-2,0-3-44", ["0-3-44", "77-3-2"], None),
        # the master already logged past (or at) the errant seq in that domain
        ("0-1-50", "0-1-50", "0-3-44", [], SEQ_PASSED.format(at=50, gtid="0-3-44")),
        ("0-1-44", "0-1-44", "0-3-44", [], SEQ_PASSED.format(at=44, gtid="0-3-44")),
        # the master wrote in the domain after the errant write and the replica could not apply it
        ("0-1-43", "0-1-42", "0-3-44", [], NOT_APPLIED),
        # another server_id on the replica (SET server_id, or a former master's own writes)
        ("0-1-42", "0-1-42", "0-9-44", [], FOREIGN),
    ],
)
def test_mariadb_injections(
    master_pos: str, slave_pos: str, errant: str, want: list[str], refused: str | None
) -> None:
    master = snap(M, gtid_binlog_pos=master_pos)
    replica = snap(R, gtid_slave_pos=slave_pos)
    gtids, why = mariadb_injections(replica, master, errant)
    assert [str(g) for g in gtids] == want
    assert why == refused


def test_not_mariadb_master() -> None:
    master = snap(M, flavor=Flavor.MYSQL, version="8.0.36")
    gtids, why = mariadb_injections(snap(R), master, "0-3-1")
    assert gtids == [] and why == (
        "gtid-errant-inject-empty requested for r:3306 but the cluster's master m:3306 is not MariaDB"
    )


@pytest.mark.parametrize(
    ("master_pos", "replica_pos", "refused"),
    [
        ("0-1-42", "0-1-42", None),
        ("0-1-42,77-1-1", "0-1-42", None),
        ("0-1-44", "0-1-44", "the master logged seq 44 in domain 0 meanwhile: 0-3-44 not injected"),
        ("0-1-45", "0-1-42", "the master logged seq 45 in domain 0 meanwhile: 0-3-44 not injected"),
        (
            "0-1-43",
            "0-1-42",
            "the master logged seq 43 in domain 0, which the replica has not applied: 0-3-44 not injected",
        ),
    ],
)
def test_still_injectable(master_pos: str, replica_pos: str, refused: str | None) -> None:
    assert still_injectable(master_pos, replica_pos, [MariadbGtid(0, 3, 44)]) == refused
