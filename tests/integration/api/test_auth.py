"""Authentication and roles: basic (with PowerAuthUsers), multi's `readonly` user, bearer tokens with
read-only/admin roles, ReadOnly mode. 401 for missing/wrong credentials, 403 for too little role.
Secrets never appear in the API's log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from libs.bus.server import NatsServer
from tests.integration.api.conftest import ApiProcess, start_api

ADMIN_PW = "adm1n-pa55w0rd-xyz"
READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-fedcba9876543210"
AUTH = {
    "AuthenticationMethod": "multi",
    "HTTPAuthUser": "admin",
    "HTTPAuthPassword": ADMIN_PW,
    "PowerAuthUsers": ["admin"],
    "BatonAuthTokens": [
        {"Name": "dashboard", "Token": READ_TOKEN, "Role": "read-only"},
        {"Name": "ops-bot", "Token": ADMIN_TOKEN, "Role": "admin"},
    ],
}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, nats_server_module: NatsServer) -> Iterator[ApiProcess]:
    tmp = tmp_path_factory.mktemp("api-auth")
    api = start_api(tmp, nats_server_module.url, f"sqlite+aiosqlite:///{tmp}/rm.db", "sqlite", AUTH)
    try:
        yield api
    finally:
        api.stop()


def _get(api: ApiProcess, path: str, **kw: object) -> httpx.Response:
    return httpx.get(f"{api.api}/{path}", timeout=10, **kw)  # type: ignore[arg-type]


READ = "clusters"
WRITE = "disable-global-recoveries"


def test_no_or_wrong_credentials_are_401(secured: ApiProcess) -> None:
    for kw in (
        {},
        {"auth": ("admin", "wrong")},
        {"auth": ("nobody", ADMIN_PW)},
        {"headers": {"Authorization": "Bearer not-a-token-at-all"}},
        {"headers": {"Authorization": "Basic !!!notbase64"}},
        {"headers": {"Authorization": "Digest abc"}},
    ):
        for path in (READ, WRITE, "events"):
            resp = _get(secured, path, **kw)
            assert resp.status_code == 401, (kw, path, resp.text)
            assert resp.json()["Code"] == "ERROR" and "WWW-Authenticate" in resp.headers


def test_basic_admin_reads_and_writes(secured: ApiProcess) -> None:
    assert _get(secured, READ, auth=("admin", ADMIN_PW)).status_code == 200
    assert _get(secured, WRITE, auth=("admin", ADMIN_PW)).status_code == 200
    assert _get(secured, "enable-global-recoveries", auth=("admin", ADMIN_PW)).status_code == 200


def test_readonly_user_and_token_get_403_on_writes(secured: ApiProcess) -> None:
    for kw in ({"auth": ("readonly", "anything")}, {"headers": {"Authorization": f"Bearer {READ_TOKEN}"}}):
        assert _get(secured, READ, **kw).status_code == 200
        assert _get(secured, "check-global-recoveries", **kw).status_code == 200
        for path in (
            WRITE,
            "begin-downtime/h/3306/me/x/10m",
            "recover/h/3306",
            "forget/h/3306",
            "ack-all-recoveries?comment=x",
            "force-master-failover/c",
        ):
            resp = _get(secured, path, **kw)
            assert resp.status_code == 403, (kw, path, resp.text)
            assert "read-only" in resp.json()["Message"]


def test_admin_token(secured: ApiProcess) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert _get(secured, WRITE, headers=headers).status_code == 200
    assert _get(secured, "check-global-recoveries", headers=headers).json()["Details"] == "disabled"
    assert _get(secured, "enable-global-recoveries", headers=headers).status_code == 200
    # who acted is audited by name, never by secret
    events = _get(secured, "baton/events", headers=headers).json()
    assert {"ops-bot", "admin"} <= {e["data"].get("by") for e in events}


def test_health_is_open_and_secrets_never_logged(secured: ApiProcess) -> None:
    assert _get(secured, "health").status_code == 200
    assert _get(secured, "leader-check").status_code == 200
    health = _get(secured, "health").text
    text = secured.logs() + health + _get(secured, "baton/events", auth=("admin", ADMIN_PW)).text
    for secret in (ADMIN_PW, READ_TOKEN, ADMIN_TOKEN):
        assert secret not in text


def test_read_only_mode_and_token_method(tmp_path: Path, nats_server_module: NatsServer) -> None:
    config = {
        "AuthenticationMethod": "token",
        "ReadOnly": True,
        "BatonAuthTokens": [{"Name": "ops", "Token": ADMIN_TOKEN, "Role": "admin"}],
    }
    api = start_api(
        tmp_path, nats_server_module.url, f"sqlite+aiosqlite:///{tmp_path}/rm.db", "sqlite", config
    )
    try:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert _get(api, READ, headers=headers).status_code == 200
        resp = _get(api, WRITE, headers=headers)
        assert resp.status_code == 403 and "ReadOnly" in resp.json()["Message"]
        assert _get(api, READ, auth=("admin", ADMIN_PW)).status_code == 401  # basic is not accepted here
        assert _get(api, READ).status_code == 401
    finally:
        api.stop()
