from __future__ import annotations

from libs.kv.base import PublishedMaster
from libs.kv.layout import cluster_master_kv_pairs
from services.kvpublisher.verdict import Verdict, judge
from tests.unit.kvpublisher.helpers import rec

PREFIX = "mysql/master"
MAIN = "mysql/master/shop"


def as_read(pairs: dict[str, str], *, index: int = 7) -> PublishedMaster:
    """What `read_cluster` returns for a store holding exactly `pairs`."""
    subkeys = {k[len(MAIN) + 1 :]: v for k, v in pairs.items() if k.startswith(MAIN + "/")}
    epoch = subkeys.get("baton-epoch")
    return PublishedMaster(
        alias="shop",
        key=MAIN,
        value=pairs.get(MAIN),
        subkeys=subkeys,
        epoch=int(epoch) if epoch is not None else None,
        index=index,
    )


def test_exact_keys_are_in_sync() -> None:
    record = rec("10.0.0.1", 3)
    assert judge(as_read(cluster_master_kv_pairs(record, PREFIX)), record, PREFIX) is Verdict.IN_SYNC


def test_absent_keys_need_repair() -> None:
    assert judge(None, rec("h", 1), PREFIX) is Verdict.REPAIR


def test_an_older_master_needs_repair() -> None:
    old = cluster_master_kv_pairs(rec("old", 1), PREFIX)
    assert judge(as_read(old), rec("new", 2), PREFIX) is Verdict.REPAIR


def test_one_wrong_subkey_needs_repair() -> None:
    record = rec("h", 2)
    pairs = cluster_master_kv_pairs(record, PREFIX) | {f"{MAIN}/port": "3307"}
    assert judge(as_read(pairs), record, PREFIX) is Verdict.REPAIR


def test_orchestrator_keys_without_epoch_need_repair() -> None:
    record = rec("h", 0)
    pairs = {k: v for k, v in cluster_master_kv_pairs(record, PREFIX).items() if "baton-epoch" not in k}
    assert judge(as_read(pairs), record, PREFIX) is Verdict.REPAIR


def test_a_newer_epoch_in_the_store_is_ahead() -> None:
    newer = cluster_master_kv_pairs(rec("new", 9), PREFIX)
    assert judge(as_read(newer), rec("old", 3), PREFIX) is Verdict.AHEAD


def test_foreign_extra_keys_are_ignored() -> None:
    record = rec("h", 2)
    pairs = cluster_master_kv_pairs(record, PREFIX) | {f"{MAIN}/note": "mine"}
    assert judge(as_read(pairs), record, PREFIX) is Verdict.IN_SYNC
