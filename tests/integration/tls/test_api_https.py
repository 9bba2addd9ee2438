"""API over HTTPS (issue 17 item 3): orchestrator's UseSSL/SSLCertFile/SSLPrivateKeyFile, and
UseMutualTLS/SSLCAFile for client certificates, next to the existing authentication; the `baton` CLI's
client verifies the server with BATON_API_CA_FILE."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from libs.bus.server import NatsServer, free_port
from libs.cli.client import ApiClient, ApiClientError
from libs.config import ConfigError, Settings
from services.api.serve import https_options, serve_with
from tests.fixtures.certs import Pki

ADMIN_PASSWORD = "api-Pw-0d93be11"

Started = Callable[..., Any]


def api_settings(pki: Pki, nats: NatsServer, state: Path, **keys: Any) -> Settings:
    base: dict[str, Any] = {
        "BatonNatsURLs": [nats.url],
        "BatonStateDir": str(state),
        "UseSSL": True,
        "SSLCertFile": str(pki.server_cert),
        "SSLPrivateKeyFile": str(pki.server_key),
        "AuthenticationMethod": "basic",
        "HTTPAuthUser": "admin",
        "HTTPAuthPassword": SecretStr(ADMIN_PASSWORD),
    }
    return Settings(**(base | keys))


@pytest.fixture
async def run_api() -> AsyncIterator[Callable[[Settings], Any]]:
    """`await run_api(settings)` serves the API on a free port until the test ends; returns the port."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(settings: Settings) -> int:
        port = free_port()
        stop = asyncio.Event()
        serving: Coroutine[Any, Any, None] = serve_with(listen=f"127.0.0.1:{port}")(settings, stop)  # type: ignore[assignment]
        task = asyncio.create_task(serving)
        running.append((stop, task))
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            if task.done():
                task.result()
                raise AssertionError("the API stopped by itself")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return port
            except OSError:
                await asyncio.sleep(0.1)
        raise AssertionError("the API did not listen in 60 s")

    yield start
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, 30)


def ca_context(pki: Pki, *, client: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if client:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


async def _status(
    url: str, verify: ssl.SSLContext | bool, auth: tuple[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(verify=verify, auth=auth, timeout=10) as http:
        return await http.get(url)


async def test_https_with_the_test_ca_and_no_plain_http(
    run_api: Started, pki: Pki, other_pki: Pki, nats_server: NatsServer, tmp_path: Path
) -> None:
    port = await run_api(api_settings(pki, nats_server, tmp_path))
    resp = await _status(f"https://127.0.0.1:{port}/api/clusters", ca_context(pki), ("admin", ADMIN_PASSWORD))
    assert resp.status_code == 200, resp.text
    denied = await _status(f"https://127.0.0.1:{port}/api/clusters", ca_context(pki))
    assert denied.status_code == 401  # HTTPS does not replace the authentication
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the same port gets no HTTP answer
        await _status(f"http://127.0.0.1:{port}/api/clusters", False, ("admin", ADMIN_PASSWORD))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await _status(f"https://127.0.0.1:{port}/api/clusters", ca_context(other_pki))


async def test_the_cli_client_verifies_with_baton_api_ca_file(
    run_api: Started, pki: Pki, nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = await run_api(api_settings(pki, nats_server, tmp_path))
    monkeypatch.setenv("BATON_AUTH_USER", "admin")
    monkeypatch.setenv("BATON_AUTH_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.delenv("BATON_API_CA_FILE", raising=False)
    api = f"https://127.0.0.1:{port}"
    with pytest.raises(ApiClientError) as err:  # the test CA is not one of the system's
        await asyncio.to_thread(_get, api, "clusters")  # (a thread: the server runs on this loop)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) and err.value.exit_code == 3

    monkeypatch.setenv("BATON_API_CA_FILE", str(pki.ca_cert))
    clusters = await asyncio.to_thread(_get, api, "clusters")
    assert clusters == []

    monkeypatch.setenv("BATON_API_CA_FILE", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ApiClientError, match="BATON_API_CA_FILE="):
        ApiClient(api)


def _get(api: str, path: str) -> Any:
    with ApiClient(api) as client:
        return client.get(path)


async def test_mutual_tls_requires_a_client_certificate(
    run_api: Started, pki: Pki, nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = api_settings(pki, nats_server, tmp_path, UseMutualTLS=True, SSLCAFile=str(pki.ca_cert))
    port = await run_api(settings)
    url = f"https://127.0.0.1:{port}/api/clusters"
    creds = ("admin", ADMIN_PASSWORD)
    assert (await _status(url, ca_context(pki, client=True), creds)).status_code == 200
    with pytest.raises(httpx.HTTPError):
        await _status(url, ca_context(pki), creds)  # no client certificate: the handshake fails

    monkeypatch.setenv("BATON_AUTH_USER", "admin")
    monkeypatch.setenv("BATON_AUTH_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("BATON_API_CA_FILE", str(pki.ca_cert))
    monkeypatch.setenv("BATON_API_CERT_FILE", str(pki.client_cert))
    monkeypatch.setenv("BATON_API_KEY_FILE", str(pki.client_key))
    assert await asyncio.to_thread(_get, f"https://127.0.0.1:{port}", "clusters") == []


def test_https_config_errors_name_the_key(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^SSLCertFile: needed with UseSSL"):
        https_options(Settings(UseSSL=True))
    with pytest.raises(ConfigError, match=r"^SSLPrivateKeyFile: .*nokey\.pem"):
        https_options(
            Settings(
                UseSSL=True, SSLCertFile=str(pki.server_cert), SSLPrivateKeyFile=str(tmp_path / "nokey.pem")
            )
        )
    with pytest.raises(ConfigError, match=r"^SSLCAFile: needed with UseMutualTLS"):
        https_options(
            Settings(
                UseSSL=True,
                SSLCertFile=str(pki.server_cert),
                SSLPrivateKeyFile=str(pki.server_key),
                UseMutualTLS=True,
            )
        )
    with pytest.raises(ConfigError, match=r"^UseMutualTLS: needs UseSSL"):
        https_options(Settings(UseMutualTLS=True))
    assert https_options(Settings()) == {}
