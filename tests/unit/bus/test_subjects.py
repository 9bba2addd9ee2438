from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from libs.bus import subjects as s
from libs.models import InstanceKey

# A single NATS token: non-empty, none of `.`, `*`, `>`, no whitespace. We also promise plain ASCII.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_=/-]+$")
KV_KEY_RE = re.compile(r"^[-/_=.a-zA-Z0-9]+$")

names = st.text(min_size=1)
hostish = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}:[0-9]{1,5}", fullmatch=True)
odd = st.text(alphabet=st.sampled_from(list("*>. \t\n~_=/:%[]-aZ9é€😀\x00\ud800")), min_size=1)


def _valid(token: str) -> None:
    assert TOKEN_RE.match(token), token
    assert s.is_valid_token(token)
    assert KV_KEY_RE.match(token) and not token.startswith(".") and not token.endswith(".")


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("db-1.dc2.example.com:3306", "db-1_dc2_example_com=3306"),
        ("127.0.0.1:23306", "127_0_0_1=23306"),
        ("[fe80::1%eth0]:3306", "/5bfe80==1/25eth0/5d=3306"),
        ("a_b", "a/5fb"),
        ("a b", "a/20b"),
        ("*", "/2a"),
        (">", "/3e"),
        ("~", "/7e"),
        ("é", "/c3/a9"),
    ],
)
def test_readable_examples(name: str, token: str) -> None:
    assert s.encode_token(name) == token
    assert s.decode_token(token) == name
    _valid(token)


@given(names)
@example("db-1.dc2.example.com:3306")
@example("[fe80::1%eth0]:3306")
@example("[::1]:3306")
@example("\ud83d\ude00")  # a surrogate pair spelled as two code points
def test_roundtrip_any_text(name: str) -> None:
    token = s.encode_token(name)
    _valid(token)
    assert s.decode_token(token) == name
    assert s.kv_key_decode(s.kv_key(name)) == name


@given(st.one_of(names, hostish, odd), st.one_of(names, hostish, odd))
def test_injective(a: str, b: str) -> None:
    if a != b:
        assert s.encode_token(a) != s.encode_token(b)


@given(odd)
def test_odd_characters_become_one_token(name: str) -> None:
    token = s.encode_token(name)
    _valid(token)
    assert s.decode_token(token) == name
    subject = s.detection_subject(name)
    assert subject.count(".") == 2


@given(st.text(alphabet=st.sampled_from(list("ab_=/-.5fAc3e ")), min_size=1))
def test_decode_accepts_only_canonical_tokens(token: str) -> None:
    """Every token either fails to decode or is exactly what encoding its decoding gives back."""
    try:
        name = s.decode_token(token)
    except ValueError:
        return
    assert s.encode_token(name) == token


@pytest.mark.parametrize("bad", ["", "a.b", "a*", "x y", "/2", "/zz", "/2E", "/2d", "/2e", "/3a", "/ff", "é"])
def test_decode_rejects_non_canonical(bad: str) -> None:
    with pytest.raises(ValueError):
        s.decode_token(bad)


def test_empty_name_is_refused() -> None:
    with pytest.raises(ValueError):
        s.encode_token("")


def test_subject_builders() -> None:
    key = InstanceKey.parse("db-1.dc2.example.com:3306")
    assert s.snapshot_subject(key) == "baton.snapshot.db-1_dc2_example_com=3306"
    assert s.snapshot_subject("db-1.dc2.example.com:3306") == s.snapshot_subject(key)
    assert s.parse_snapshot_subject(s.snapshot_subject(key)) == key
    v6 = InstanceKey.parse("[fe80::1]:3307")
    assert s.parse_snapshot_subject(s.snapshot_subject(v6)) == v6
    assert s.detection_subject("c1.example") == "baton.detection.c1_example"
    assert s.parse_detection_subject("baton.detection.c1_example") == "c1.example"
    assert s.recovery_subject("c.x:1", "started") == "baton.recovery.c_x=1.started"
    assert s.parse_recovery_subject("baton.recovery.c_x=1.started") == ("c.x:1", "started")
    assert s.audit_subject("kv-published") == "baton.audit.kv-published"
    assert s.cmd_subject("recovery", "ack") == "baton.cmd.recovery.ack"
    assert s.PROBE_NOW == "baton.probe.now"


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "A", "x y"])
def test_builders_refuse_non_words(bad: str) -> None:
    with pytest.raises(ValueError):
        s.audit_subject(bad)
    with pytest.raises(ValueError):
        s.recovery_subject("c", bad)
    with pytest.raises(ValueError):
        s.cmd_subject(bad, "x")


@pytest.mark.parametrize(
    "subject", ["baton.snapshot", "baton.snapshot.a.b", "baton.detection.x", "other.snapshot.a"]
)
def test_parse_rejects_wrong_shape(subject: str) -> None:
    with pytest.raises(ValueError):
        s.parse_snapshot_subject(subject)
