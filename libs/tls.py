"""TLS contexts from PEM files, with errors that say which file could not be used.

One builder for every channel (MySQL topology and read model, NATS, the API server and its CLI client),
so they verify the same way: `client_context` verifies the server's certificate chain and hostname
against `ca_file` (the system CAs when empty) unless `skip_verify`, and presents `cert_file`/`key_file`
when given; `server_context` loads a server's certificate and, optionally, the CA its clients'
certificates must chain to. Callers map `TLSFileError.what` to their own config key names.
"""

from __future__ import annotations

import ssl


class TLSFileError(ValueError):
    """A PEM file that cannot be used. `what`: `ca_file` or `cert_file/key_file`."""

    def __init__(self, what: str, paths: str, reason: str) -> None:
        super().__init__(f"{what} {paths}: {reason}")
        self.what = what


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _load_ca(ctx: ssl.SSLContext, ca_file: str) -> None:
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFileError("ca_file", repr(ca_file), _why(exc)) from None


def _load_pair(ctx: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    try:
        ctx.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFileError("cert_file/key_file", f"{cert_file!r}, {key_file!r}", _why(exc)) from None


def client_context(
    ca_file: str = "", cert_file: str = "", key_file: str = "", *, skip_verify: bool = False
) -> ssl.SSLContext:
    """A client context (TLS 1.2+). Raises TLSFileError naming the file it could not load."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        _load_ca(ctx, ca_file)
    if cert_file:
        _load_pair(ctx, cert_file, key_file)
    if skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_context(cert_file: str, key_file: str, client_ca_file: str = "") -> ssl.SSLContext:
    """A server context; with `client_ca_file`, clients must present a certificate of that CA."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_pair(ctx, cert_file, key_file)
    if client_ca_file:
        _load_ca(ctx, client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
