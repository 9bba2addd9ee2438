"""Tags (orchestrator's ParseTag / tagged / Untag rules) and maintenance locks, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.discovery import maintenance, tags
from libs.models import InstanceKey

A, B, C = (InstanceKey.parse(f"db{i}:3306") for i in (1, 2, 3))


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("role", tags.Tag("role")),
        (" role ", tags.Tag("role")),
        ("role=backup", tags.Tag("role", "backup", has_value=True)),
        ("role=", tags.Tag("role", "", has_value=True)),
        ("~role", tags.Tag("role", negate=True)),
        ("!role", tags.Tag("role", negate=True)),
        ("~role=backup", tags.Tag("role", "backup", has_value=True, negate=True)),
        ("a=b=c", tags.Tag("a", "b=c", has_value=True)),
    ],
)
def test_parse_tag(text: str, want: tags.Tag) -> None:
    assert tags.parse_tag(text) == want


@pytest.mark.parametrize("text", ["", "=x", "  "])
def test_unparseable_tags_use_orchestrators_words(text: str) -> None:
    with pytest.raises(tags.TagError, match="Unable to parse tag"):
        tags.parse_tag(text)


def test_strings_and_display() -> None:
    assert tags.tag_strings({"z": "1", "a": ""}) == ["a=", "z=1"]
    assert tags.Tag("a").display() == "a" and tags.Tag("a", "1").display() == "a=1"
    with pytest.raises(tags.TagError, match="empty tag name"):
        tags.new_tag(" ", "x")


ALL = {A: {"role": "backup", "dc": "east"}, B: {"role": "reporting"}, C: {"dc": "east"}}


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("role", [A, B]),
        ("role=backup", [A]),
        ("role,dc=east", [A]),
        ("~role", [C]),
        ("dc=east,~role=backup", [C]),
        ("nothing", []),
    ],
)
def test_tagged_intersects(query: str, want: list[InstanceKey]) -> None:
    assert tags.tagged(ALL, query) == want


def test_negation_counts_known_untagged_instances() -> None:
    d = InstanceKey.parse("db4:3306")
    assert tags.tagged(ALL, "~dc", known=[d]) == [B, d]


def test_untag_rules() -> None:
    assert tags.untag_targets(ALL, tags.Tag("role"), A) == [A]
    assert tags.untag_targets(ALL, tags.Tag("role"), C) == []
    assert tags.untag_targets(ALL, tags.Tag("dc", "east", has_value=True), None) == [A, C]
    assert tags.untag_targets(ALL, tags.Tag("role", "x", has_value=True), A) == []
    with pytest.raises(tags.TagError, match="Will not delete on-valued tag across instances"):
        tags.untag_targets(ALL, tags.Tag("role"), None)
    with pytest.raises(tags.TagError, match="does not support negation"):
        tags.untag_targets(ALL, tags.Tag("role", negate=True), A)


NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_maintenance_lock_is_active_until_its_end() -> None:
    lock = maintenance.Maintenance(owner="ops", reason="disk", begin=NOW, end=NOW + timedelta(minutes=10))
    raw = lock.model_dump_json().encode()
    assert maintenance.in_maintenance(raw, NOW, A) == lock
    assert maintenance.in_maintenance(raw, NOW + timedelta(minutes=10), A) is None
    assert maintenance.in_maintenance(None, NOW, A) is None
    assert maintenance.in_maintenance(b"", NOW, A) is None  # the server's TTL-expiry marker
    assert maintenance.refusal(A, lock) == "db1:3306 is under maintenance (owner: ops, reason: disk)"


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"owner": "x"}'])
def test_an_undecodable_lock_fails_closed(raw: bytes) -> None:
    lock = maintenance.in_maintenance(raw, NOW, A)
    assert lock is not None and lock.undecodable and lock.active(NOW + timedelta(days=400))
