"""Pure parts of the API: auth decisions, input parsing, cluster filters and lookup, reply decoding,
payload decoding, and that docs/events.md matches the models."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.requests import Request

from libs.config import Settings
from libs.models import Event, InstanceKey, InstanceSnapshot, utcnow
from libs.models.operator import CommandReply, CommandStatus
from libs.store import decode
from libs.topology.succession import follow_masters
from libs.topology.view import InstanceState, group_clusters
from services.api.auth import Authenticator
from services.api.deps import parse_duration, parse_key
from services.api.dispatch import decode_reply
from services.api.envelope import ApiError
from services.api.shapes import matches_filters, thread_state

TOKEN = "t" * 20


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b""})


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _settings(**kw: object) -> Settings:
    return Settings.model_validate(kw)


def test_no_auth_is_anonymous_admin() -> None:
    assert Authenticator(_settings()).authenticate(_request({})).admin


@pytest.mark.parametrize(
    ("headers", "role"),
    [
        (_basic("admin", "pw-1234567890"), "admin"),
        (_basic("readonly", "whatever"), "read-only"),
        ({"Authorization": f"Bearer {TOKEN}"}, "read-only"),
    ],
)
def test_multi_roles(headers: dict[str, str], role: str) -> None:
    auth = Authenticator(
        _settings(
            AuthenticationMethod="multi",
            HTTPAuthUser="admin",
            HTTPAuthPassword="pw-1234567890",
            PowerAuthUsers=["admin"],
            BatonAuthTokens=[{"Name": "x", "Token": TOKEN}],
        )
    )
    assert auth.authenticate(_request(headers)).role == role


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("admin", "nope"),
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic ***"},
        {"Authorization": "X"},
    ],
)
def test_basic_rejections_are_401(headers: dict[str, str]) -> None:
    auth = Authenticator(
        _settings(AuthenticationMethod="basic", HTTPAuthUser="admin", HTTPAuthPassword="pw-1234567890")
    )
    with pytest.raises(ApiError) as info:
        auth.authenticate(_request(headers))
    assert info.value.status == 401 and "pw-1234567890" not in info.value.message


def test_basic_user_not_in_power_users_is_read_only() -> None:
    auth = Authenticator(
        _settings(
            AuthenticationMethod="basic",
            HTTPAuthUser="bob",
            HTTPAuthPassword="pw-1234567890",
            PowerAuthUsers=["alice"],
        )
    )
    assert auth.authenticate(_request(_basic("bob", "pw-1234567890"))).role == "read-only"


def test_proxy_header() -> None:
    auth = Authenticator(_settings(AuthenticationMethod="proxy", PowerAuthUsers=["root"]))
    assert auth.authenticate(_request({"X-Forwarded-User": "root"})).admin
    assert not auth.authenticate(_request({"X-Forwarded-User": "eve"})).admin
    with pytest.raises(ApiError):
        auth.authenticate(_request({}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("90", timedelta(seconds=90)),
        ("0", timedelta(hours=1)),
        ("", timedelta(hours=1)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, timedelta(hours=1)) == expected


@pytest.mark.parametrize("text", ["10x", "m", "-5m", "1h-", "400d", "1.5.5m", "10m10"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_duration(text, timedelta(hours=1))
    assert info.value.status == 400


def test_parse_key() -> None:
    assert parse_key("db1.example", "3307") == InstanceKey(host="db1.example", port=3307)
    assert parse_key("::1", "3306") == InstanceKey(host="::1", port=3306)
    for host, port in (("h", "0"), ("h", "65536"), ("h", "x"), ("a b", "1"), ("h", "")):
        with pytest.raises(ApiError) as info:
            parse_key(host, port)
        assert info.value.status == 400


def test_cluster_filters() -> None:
    assert matches_filters(["*"], "a:1", "x")
    assert matches_filters(["alias=prod"], "a:1", "prod") and not matches_filters(
        ["alias=prod"], "a:1", "dev"
    )
    assert matches_filters(["alias~=^pr"], "a:1", "prod")
    assert matches_filters([r"db-\d+"], "db-7:3306", "x") and not matches_filters(["zzz"], "a:1", "b")
    assert not matches_filters([], "a:1", "b")


def test_thread_state() -> None:
    from libs.models.instance import IOThreadState

    assert thread_state(None) == -1 and thread_state(False) == 0 and thread_state(True) == 1
    assert thread_state(False, IOThreadState.CONNECTING) == 2


def test_find_view_by_alias_name_or_member() -> None:
    def state(port: int, master: int | None) -> InstanceState:
        from libs.models import ReplicationStatus

        repl = ReplicationStatus(master=InstanceKey(host="h", port=master)) if master else None
        snap = InstanceSnapshot(
            key=InstanceKey(host="h", port=port),
            probed_at=utcnow(),
            reachable=True,
            replication=repl,
            cluster_alias="shop" if master is None else "",
        )
        return InstanceState(key=snap.key, last_probe=snap, last_seen=snap)

    views = group_clusters([state(1, None), state(2, 1), state(9, None)])
    directory = follow_masters(views, [], utcnow(), timedelta(seconds=3))
    assert directory.find("shop") is views[0]
    assert directory.find("h:2") is views[0]
    # h:9 reports the alias too, but the larger live cluster keeps it: h:9 answers to its own name
    only = directory.find("h:9")
    assert only is not None and (only.name, only.alias) == ("h:9", "h:9")
    assert directory.find("nope") is None and directory.find("h:77") is None


def test_decode_reply_both_shapes() -> None:
    reply = decode_reply(CommandReply(status=CommandStatus.NOT_FOUND, message="m").model_dump_json().encode())
    assert reply is not None and reply.status is CommandStatus.NOT_FOUND
    env = decode_reply(b'{"Code": "ERROR", "Message": "x", "Status": 400}')
    assert env is not None and env.status is CommandStatus.BAD_REQUEST and env.message == "x"
    ok = decode_reply(b'{"Code": "OK", "Message": "y", "Details": [1]}')
    assert ok is not None and ok.ok and ok.details == [1]
    assert decode_reply(b"junk") is None and decode_reply(b'{"status": "weird"}') is None


def test_decode_payloads() -> None:
    snap = InstanceSnapshot.unreachable(InstanceKey(host="h", port=1), utcnow(), "refused")
    assert decode.snapshot(snap.model_dump_json().encode()) == snap
    wrapped = Event(type="snapshot", source="x", data=snap.model_dump(mode="json"))
    assert decode.snapshot(wrapped.model_dump_json().encode()) == snap
    with pytest.raises(ValueError, match="not an InstanceSnapshot"):
        decode.snapshot(b'{"key": 1}')
    with pytest.raises(ValueError, match="not an Event"):
        decode.event(b"[]")
    step = Event(type="recovery.step", source="recovery", data={"uid": "u", "step": {}})
    assert decode.recovery_record(step) is None
    full = Event(
        type="recovery.completed", source="recovery", data={"record": {"uid": "u", "started_at": "x"}}
    )
    assert decode.recovery_record(full) == {"uid": "u", "started_at": "x"}


def test_events_doc_is_generated_from_the_models() -> None:
    from services.api.schemas import render

    doc = Path(__file__).resolve().parents[3] / "docs" / "events.md"
    assert doc.read_text() == render(), "regenerate: python -m services.api.schemas > docs/events.md"
