"""Connect to NATS, and translate nats-py's exceptions into BusError at the edge.

A Baton service must outlive broker restarts and leader changes, so the connection reconnects forever
once established. The *first* connect, though, is bounded (`connect_timeout_s`): nats-py with unlimited
reconnects would otherwise retry an unreachable URL forever, and `baton` must fail in one line instead.

Security (`NatsSecurity`, mapped from the `BatonNats*` keys by libs.config.derive.nats_security): TLS with
a CA and an optional client certificate, and one of user/password, token, a `.creds` file (JWT + NKey) or
an NKey seed file. When TLS is configured it is required: a server that does not ask for TLS is refused
before any password or token is sent to it (nats-py would otherwise carry on in plaintext).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict, SecretStr

from libs.errors import BusError
from libs.tls import TLSFileError, client_context

log = logging.getLogger(__name__)
PING_INTERVAL_S = 2  # client PINGs; with MAX_OUTSTANDING_PINGS a silent (partitioned) server is left
MAX_OUTSTANDING_PINGS = 3  # after 6-8 s for the next URL


class _TLSEofNoise(logging.Filter):
    """asyncio warns "returning true from eof_received() has no effect when using ssl" each time a TLS
    connection of nats-py's transport is closed by the peer: harmless (nats-py reconnects), dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_TLSEofNoise())


@dataclass
class Bus:
    """A live NATS connection and its JetStream context. `async with` closes it (draining nothing)."""

    nc: Client
    js: JetStreamContext

    async def close(self) -> None:
        """Close the connection; never raises (closing towards a dead server is not an error)."""
        if not self.nc.is_closed:
            try:
                await self.nc.close()
            except (nats.errors.Error, OSError) as exc:
                log.debug("nats close: %s", describe(exc))

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def describe(exc: BaseException) -> str:
    """A one-line operator-facing description of a nats-py (or socket) failure."""
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return "no JetStream response (no stream for the subject, or no quorum)"
    if isinstance(exc, nats.js.errors.APIError):
        return f"JetStream refused: {exc.description or type(exc).__name__} (err_code {exc.err_code})"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for NATS"
    if isinstance(exc, nats.errors.NoServersError):
        return "no NATS server reachable"
    if isinstance(exc, nats.errors.ConnectionClosedError):
        return "the NATS connection is closed"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def bus_errors(what: str) -> Iterator[None]:
    """Re-raise nats/socket failures inside the block as `BusError("<what>: <cause>")`."""
    try:
        yield
    except BusError:
        raise
    except (nats.errors.Error, TimeoutError, OSError) as exc:
        raise BusError(f"{what}: {describe(exc)}") from exc


class NatsSecurity(BaseModel):
    """How to secure a NATS connection. Empty fields are unused; secrets are SecretStr (never logged).

    TLS is on when `ca_file` or `cert_file` is set (or a URL says `tls://`): the server certificate is
    verified against `ca_file` (the system CAs when empty), and `cert_file`/`key_file` are presented
    when the server asks for a client certificate. At most one way to authenticate is set."""

    model_config = ConfigDict(frozen=True)

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    user: str = ""
    password: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    creds_file: str = ""
    nkey_seed_file: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.ca_file or self.cert_file)

    def tls_context(self) -> ssl.SSLContext:
        """The client SSLContext; raises libs.tls.TLSFileError naming the file it cannot use."""
        return client_context(self.ca_file, self.cert_file, self.key_file)


class TLSNotOffered(nats.errors.Error):
    """TLS is configured but the server does not require it: nothing secret was sent."""

    def __str__(self) -> str:
        return "the server does not offer TLS, but TLS is configured (refusing to go on in plaintext)"


def _security_options(nc: Client, security: NatsSecurity | None, tls_required: bool) -> dict[str, Any]:
    """nats-py connect() options for `security`. With TLS required, secrets are handed over through
    callbacks that first check that the server announced TLS (the connection is then encrypted)."""
    if security is None:
        return {}

    def guarded(value: str) -> Callable[[], str]:
        def give() -> str:
            if tls_required and not nc._server_info.get("tls_required"):  # no public INFO accessor
                raise TLSNotOffered
            return value

        return give

    options: dict[str, Any] = {}
    if tls_required:
        try:
            options["tls"] = security.tls_context()
        except TLSFileError as exc:
            raise BusError(f"NATS TLS: {exc}") from None
    if security.user:
        options["user"] = guarded(security.user)
        options["password"] = guarded(security.password.get_secret_value())
    elif security.token.get_secret_value():
        options["token"] = guarded(security.token.get_secret_value())
    elif security.creds_file:
        options["user_credentials"] = security.creds_file
    elif security.nkey_seed_file:
        options["nkeys_seed"] = security.nkey_seed_file
    return options


async def _log_error(exc: Exception) -> None:
    log.warning("nats: %s", describe(exc))


async def _log_reconnected() -> None:
    log.info("nats: reconnected")


async def connect(
    urls: str | Sequence[str],
    name: str,
    *,
    connect_timeout_s: float = 5.0,
    request_timeout_s: float = 5.0,
    reconnect_wait_s: float = 0.5,
    security: NatsSecurity | None = None,
) -> Bus:
    """Connect to any of `urls` (comma-separated text or a list) as client `name`, secured by `security`
    (TLS and credentials; services get it from `libs.config.derive.nats_security(settings)`).

    Returns a `Bus` whose connection reconnects forever; raises BusError (one line, no credentials)
    when no server answers within `connect_timeout_s`, refuses the credentials, or does not offer the
    TLS that `security` asks for.
    """
    servers = [u.strip() for u in urls.split(",")] if isinstance(urls, str) else list(urls)
    servers = [u for u in servers if u]
    if not servers:
        raise BusError("no NATS URL configured")
    tls_required = (security is not None and security.tls) or any(u.startswith("tls://") for u in servers)
    nc = Client()
    secured = _security_options(nc, security, tls_required)

    async def _log_disconnected() -> None:
        if not nc.is_closed:
            log.warning("nats: disconnected, reconnecting")

    try:
        await asyncio.wait_for(
            nc.connect(
                servers=servers,
                name=name,
                connect_timeout=max(1, int(min(connect_timeout_s, 2))),
                reconnect_time_wait=reconnect_wait_s,  # type: ignore[arg-type]
                max_reconnect_attempts=-1,
                # A server cut off by a partition answers nothing and closes nothing: only missed PONGs
                # tell. 10 s x 3 kept a dc2 service on an isolated dc1 node for ~39 s (every request
                # timing out, DeadMaster 41 s late); 2 s x 3 moves it within ~6-8 s.
                ping_interval=PING_INTERVAL_S,
                max_outstanding_pings=MAX_OUTSTANDING_PINGS,
                # The order of the URLs is the preference: the node in the service's own DC first
                # (nats-py would shuffle them and may attach a dc2 service to a dc1 node).
                dont_randomize=True,
                error_cb=_log_error,
                disconnected_cb=_log_disconnected,
                reconnected_cb=_log_reconnected,
                **secured,
            ),
            timeout=connect_timeout_s,
        )
        if tls_required and not nc._server_info.get("tls_required"):  # no public INFO accessor
            raise TLSNotOffered
    except (nats.errors.Error, TimeoutError, OSError) as exc:
        cause = nc.last_error if isinstance(exc, TimeoutError) and nc.last_error else exc
        with contextlib.suppress(Exception):
            await nc.close()
        shown = ", ".join(without_credentials(u) for u in servers)
        raise BusError(f"cannot connect to NATS at {shown}: {describe(cause)}") from exc
    return Bus(nc=nc, js=nc.jetstream(timeout=request_timeout_s))


def without_credentials(url: str) -> str:
    """Strip `user:pass@` from a URL so it can appear in a message."""
    scheme, sep, rest = url.rpartition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
