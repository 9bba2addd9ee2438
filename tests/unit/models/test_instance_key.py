from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.models import InstanceKey


@pytest.mark.parametrize(
    ("text", "host", "port", "formatted"),
    [
        ("db-1.dc2.example.com:3306", "db-1.dc2.example.com", 3306, "db-1.dc2.example.com:3306"),
        ("db-1", "db-1", 3306, "db-1:3306"),
        ("127.0.0.1:23306", "127.0.0.1", 23306, "127.0.0.1:23306"),
        ("[::1]:3307", "::1", 3307, "[::1]:3307"),
        ("fe80::1", "fe80::1", 3306, "[fe80::1]:3306"),
        ("  host:1  ", "host", 1, "host:1"),
    ],
)
def test_parse_and_format(text: str, host: str, port: int, formatted: str) -> None:
    key = InstanceKey.parse(text)
    assert (key.host, key.port) == (host, port)
    assert str(key) == formatted
    assert InstanceKey.parse(str(key)) == key


@pytest.mark.parametrize(
    "text", ["", ":3306", "host:", "host:abc", "host:0", "host:65536", "[::1", "[::1]x", "a b:1"]
)
def test_parse_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        InstanceKey.parse(text)


def test_keys_are_hashable_and_ordered() -> None:
    a, b = InstanceKey.parse("a:1"), InstanceKey.parse("b:1")
    assert {a, InstanceKey.parse("a:1")} == {a}
    assert sorted([b, a]) == [a, b]


@given(
    host=st.from_regex(
        r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?){0,4}", fullmatch=True
    ),
    port=st.integers(1, 65535),
)
def test_roundtrip_hostnames(host: str, port: int) -> None:
    key = InstanceKey(host=host, port=port)
    assert InstanceKey.parse(str(key)) == key
