"""A small client of Baton's HTTP API (httpx), used by the `baton` CLI's orchestrator-client verbs.

Errors become `ApiClientError` with a one-line message and the exit code the CLI should use:
1 the API refused or failed the command (its message), 3 the API cannot be reached, 4 not authorised.
Credentials come from the environment (`BATON_TOKEN`, or `BATON_AUTH_USER` + `BATON_AUTH_PASSWORD`),
never from the command line, and never appear in messages.

HTTPS (an API with `UseSSL`): `BATON_API_CA_FILE` names the CA bundle its certificate is verified with
(default: the system CAs); `BATON_API_CERT_FILE` + `BATON_API_KEY_FILE` a client certificate for an API
with `UseMutualTLS`. Verification is never switched off.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from typing import Any

import httpx

from libs.errors import BatonError
from libs.tls import TLSFileError, client_context

DEFAULT_API = "http://127.0.0.1:3000"
EXIT_API_ERROR = 1
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4


class ApiClientError(BatonError):
    def __init__(self, message: str, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _auth_from_env() -> tuple[dict[str, str], httpx.BasicAuth | None]:
    token = os.environ.get("BATON_TOKEN", "")
    if token:
        return {"Authorization": f"Bearer {token}"}, None
    user = os.environ.get("BATON_AUTH_USER", "")
    if user:
        return {}, httpx.BasicAuth(user, os.environ.get("BATON_AUTH_PASSWORD", ""))
    return {}, None


CA_ENV, CERT_ENV, KEY_ENV = "BATON_API_CA_FILE", "BATON_API_CERT_FILE", "BATON_API_KEY_FILE"


def tls_from_env() -> ssl.SSLContext:
    """The client TLS context: the CA of BATON_API_CA_FILE (else the system's), and the client
    certificate of BATON_API_CERT_FILE/BATON_API_KEY_FILE when set. A file that cannot be used is an
    ApiClientError naming its variable."""
    ca, cert, key = (os.environ.get(name, "") for name in (CA_ENV, CERT_ENV, KEY_ENV))
    if bool(cert) != bool(key):
        raise ApiClientError(f"{CERT_ENV} and {KEY_ENV} must be set together")
    try:
        return client_context(ca, cert, key)
    except TLSFileError as exc:
        which = f"{CA_ENV}={ca!r}" if exc.what == "ca_file" else f"{CERT_ENV}={cert!r}/{KEY_ENV}={key!r}"
        raise ApiClientError(f"{which}: {exc}") from None


def _unreachable(base: str, exc: httpx.HTTPError) -> str:
    """Why the API cannot be reached, in one line (a TLS failure says which)."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return f"cannot reach the API at {base}: TLS: {text.splitlines()[0][:200]}"
    return f"cannot reach the API at {base}: {type(exc).__name__}"


def normalize(api: str) -> str:
    """`http://h:3000`, `http://h:3000/` or `http://h:3000/api` → `http://h:3000/api`."""
    base = api.rstrip("/")
    return base if base.endswith("/api") else f"{base}/api"


class ApiClient:
    def __init__(self, api: str = DEFAULT_API, *, timeout_s: float = 120.0) -> None:
        self.base = normalize(api)
        headers, auth = _auth_from_env()
        self.http = httpx.Client(
            base_url=self.base, headers=headers, auth=auth, timeout=timeout_s, verify=tls_from_env()
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET `path` (relative to /api); the JSON body. Raises ApiClientError on any failure."""
        try:
            resp = self.http.get("/" + path.lstrip("/"), params=params)
        except httpx.TimeoutException:
            raise ApiClientError(f"the API at {self.base} did not answer in time", EXIT_UNREACHABLE) from None
        except httpx.HTTPError as exc:
            raise ApiClientError(_unreachable(self.base, exc), EXIT_UNREACHABLE) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400 or (isinstance(body, dict) and body.get("Code") == "ERROR"):
            message = body.get("Message") if isinstance(body, dict) else None
            code = EXIT_AUTH if resp.status_code in (401, 403) else EXIT_API_ERROR
            raise ApiClientError(message or f"HTTP {resp.status_code} from {path}", code)
        if body is None:
            raise ApiClientError(f"{path}: the API answered something that is not JSON")
        return body

    def details(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The `Details` of an envelope answer (commands, topology, analysis)."""
        body = self.get(path, params)
        return body.get("Details") if isinstance(body, dict) and "Code" in body else body

    def events(self, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Follow `/api/events` (SSE): yields each event's JSON, with `sse_event`/`sse_id` added."""
        try:
            with self.http.stream(
                "GET", "/events", params=params, timeout=httpx.Timeout(10, read=None)
            ) as resp:
                if resp.status_code >= 400:
                    raise ApiClientError(f"events: HTTP {resp.status_code}", EXIT_API_ERROR)
                frame: dict[str, str] = {}
                for line in resp.iter_lines():
                    if line == "":
                        if "data" in frame:
                            data = json.loads(frame["data"])
                            yield {**data, "sse_event": frame.get("event", ""), "sse_id": frame.get("id", "")}
                        frame = {}
                    elif not line.startswith(":"):
                        field, _, value = line.partition(": ")
                        frame[field] = value
        except httpx.HTTPError as exc:
            raise ApiClientError(f"events: {type(exc).__name__}", EXIT_UNREACHABLE) from None
