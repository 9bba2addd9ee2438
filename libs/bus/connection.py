"""Connect to NATS, and translate nats-py's exceptions into BusError at the edge.

A Baton service must outlive broker restarts and leader changes, so the connection reconnects forever
once established. The *first* connect, though, is bounded (`connect_timeout_s`): nats-py with unlimited
reconnects would otherwise retry an unreachable URL forever, and `baton` must fail in one line instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from libs.errors import BusError

log = logging.getLogger(__name__)


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
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> Bus:
    """Connect to any of `urls` (comma-separated text or a list) as client `name`.

    Returns a `Bus` whose connection reconnects forever; raises BusError (one line, no credentials)
    when no server answers within `connect_timeout_s`.
    """
    servers = [u.strip() for u in urls.split(",")] if isinstance(urls, str) else list(urls)
    servers = [u for u in servers if u]
    if not servers:
        raise BusError("no NATS URL configured")
    nc = Client()

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
                ping_interval=10,
                max_outstanding_pings=3,
                user=user,
                password=password,
                token=token,
                error_cb=_log_error,
                disconnected_cb=_log_disconnected,
                reconnected_cb=_log_reconnected,
            ),
            timeout=connect_timeout_s,
        )
    except (nats.errors.Error, TimeoutError, OSError) as exc:
        cause = nc.last_error if isinstance(exc, TimeoutError) and nc.last_error else exc
        with contextlib.suppress(Exception):
            await nc.close()
        shown = ", ".join(_without_credentials(u) for u in servers)
        raise BusError(f"cannot connect to NATS at {shown}: {describe(cause)}") from exc
    return Bus(nc=nc, js=nc.jetstream(timeout=request_timeout_s))


def _without_credentials(url: str) -> str:
    """Strip `user:pass@` from a URL so it can appear in a message."""
    scheme, sep, rest = url.rpartition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
