"""StatusEndpoint (orchestrator's): the status answer is also served at the configured path, open like
`/api/status` even when the API requires authentication."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from libs.bus.server import NatsServer
from libs.config import ConfigError, load_settings
from tests.integration.api.conftest import start_api

TOKEN = "status-test-token-0123456789"


def test_status_endpoint_serves_the_status(tmp_path: Path, nats_server: NatsServer) -> None:
    config = {
        "StatusEndpoint": "/healthz/baton",
        "AuthenticationMethod": "token",
        "BatonAuthTokens": [{"Name": "ops", "Token": TOKEN, "Role": "admin"}],
    }
    api = start_api(tmp_path, nats_server.url, f"sqlite+aiosqlite:///{tmp_path}/rm.db", "sqlite", config)
    try:
        usual = api.wait_for("status", lambda r: r.status_code == 200)
        assert usual.status_code == 200, usual.text
        moved = httpx.get(f"{api.base}/healthz/baton", timeout=10)
        assert moved.status_code == 200, moved.text
        assert moved.json()["Code"] == usual.json()["Code"] == "OK"
        assert moved.json()["Details"].keys() == usual.json()["Details"].keys()
        assert httpx.get(f"{api.base}/healthz/other", timeout=10).status_code == 404
        assert api.get("clusters").status_code == 401  # the rest still needs the token
    finally:
        api.stop()


@pytest.mark.parametrize("bad", ["healthz", "/a?b"])
def test_a_status_endpoint_that_is_no_path_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="StatusEndpoint"):
        load_settings(None, env={"BATON_StatusEndpoint": bad})
