"""Registered promotion rules (`baton_candidates`) fail closed: an unreadable rule is `must_not`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from libs.bus.subjects import kv_key
from libs.models import InstanceKey, PromotionRule
from libs.recovery.options import parse_registered
from libs.topology.plan import RegisteredRule

NOW = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)


def _rule(rule: PromotionRule, expires_at: datetime) -> bytes:
    return RegisteredRule(rule=rule, expires_at=expires_at).model_dump_json().encode()


def test_valid_unexpired_rules_are_kept_and_expired_ones_dropped() -> None:
    later, earlier = NOW + timedelta(minutes=5), NOW - timedelta(seconds=1)
    got = parse_registered(
        {
            kv_key("a:3306"): _rule(PromotionRule.PREFER, later),
            kv_key("b:3306"): _rule(PromotionRule.MUST_NOT, earlier),
        },
        NOW,
    )
    assert got == {InstanceKey.parse("a:3306"): RegisteredRule(rule=PromotionRule.PREFER, expires_at=later)}


@pytest.mark.parametrize(
    "value", [b"", b"{", b'{"rule": "prefer"}', b'{"rule": "nonsense", "expires_at": "x"}']
)
def test_an_undecodable_rule_counts_as_must_not_and_is_logged_with_its_key(
    value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    key = kv_key("db-2.example.com:3306")
    with caplog.at_level(logging.ERROR):
        got = parse_registered({key: value}, NOW)
    rule = got[InstanceKey.parse("db-2.example.com:3306")]
    assert rule.rule is PromotionRule.MUST_NOT and rule.expires_at > NOW
    assert any(r.levelno == logging.ERROR and key in r.getMessage() for r in caplog.records)


def test_a_key_naming_no_instance_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        got = parse_registered({"x=notaport": _rule(PromotionRule.MUST_NOT, NOW + timedelta(hours=1))}, NOW)
    assert got == {}
    assert any(r.levelno == logging.ERROR and "x=notaport" in r.getMessage() for r in caplog.records)
