"""The chaos writer's pure parts: the ledger it leaves, how it picks the master from the Consuls, and
what counts as semi-sync having held."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.scenarios import _semi_sync_held
from tests.chaos.writer import master_of, read_ledger


def test_the_ledger_is_the_acknowledged_ids_and_a_torn_last_line_is_none(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    assert read_ledger(ledger) == frozenset()
    ledger.write_text("1\n2\n4\n1")  # 3 failed; "1" torn: a writer killed while writing "17"
    assert read_ledger(ledger) == {1, 2, 4}
    ledger.write_text("1\n2\n4\n")
    assert read_ledger(ledger) == {1, 2, 4}


def test_the_master_is_what_most_answering_consuls_name() -> None:
    assert master_of([None, "b:1", "b:1"]) == "b:1"
    assert master_of(["a:1", "b:1", "b:1"]) == "b:1"  # one DC not corrected yet
    assert master_of(["a:1", None, "b:1"]) == "a:1"  # a tie: the first DC's
    assert master_of([None, "", None]) is None


def test_semi_sync_held_only_when_on_and_nothing_committed_without_an_ack() -> None:
    on = {"Rpl_semi_sync_master_status": "ON", "Rpl_semi_sync_master_no_tx": "0"}
    assert _semi_sync_held(on)
    assert not _semi_sync_held(on | {"Rpl_semi_sync_master_status": "OFF"})  # fell back to async
    assert not _semi_sync_held(on | {"Rpl_semi_sync_master_no_tx": "3"})  # had fallen back for a while
    assert not _semi_sync_held({})
