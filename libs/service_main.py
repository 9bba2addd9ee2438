"""How a Baton service runs: one `serve(settings, stop)` coroutine per service, one `main` for all.

Every service package exposes `serve(settings, stop) -> None`: it starts, runs until `stop` is set,
then cleans up (leases released, connections closed). `python -m services.<name>` wraps it with
`service_main`, and `baton up` runs all five `serve`s side by side in one process with one `stop`. So a
service behaves the same alone and embedded, and the shutdown path is the one the tests exercise.

`service_main` promises what an operator expects of a daemon: `--config FILE` (orchestrator-style JSON,
plus `BATON_<Key>` environment variables), `--nats URL` (overrides BatonNatsURLs), `--log-level`;
SIGINT/SIGTERM stop it cleanly (exit 0); SIGHUP re-reads the config file (`libs/config/reload.py`: the
keys the service reads at each use change live, the others are named in a WARNING as needing a restart;
a bad file is logged and changes nothing); any `BatonError` at start-up or later — bad config, NATS or
Consul unreachable — is one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from libs.config import Settings, load_settings
from libs.config.reload import ConfigSource, install
from libs.errors import BatonError, ConfigError
from libs.telemetry import setup_telemetry

Serve = Callable[[Settings, asyncio.Event], Awaitable[None]]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def require_nats(settings: Settings, service: str) -> None:
    if not settings.BatonNatsURLs:
        raise ConfigError(f"BatonNatsURLs is empty: the {service} needs a NATS server (or pass --nats)")


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def reload_on_sighup(source: ConfigSource) -> None:
    """SIGHUP: re-read the config (a bad file is logged and changes nothing)."""

    def on_hup() -> None:
        try:
            source.reload()
        except BatonError as exc:
            logging.getLogger(__name__).error("SIGHUP: config not reloaded: %s", exc)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)


def with_nats(settings: Settings, nats: str | None) -> Settings:
    """Settings with BatonNatsURLs replaced by a comma-separated `--nats` value, if one was given."""
    if not nats:
        return settings
    return settings.model_copy(update={"BatonNatsURLs": [u.strip() for u in nats.split(",") if u.strip()]})


def _baton_errors(exc: BaseException) -> list[BatonError]:
    if isinstance(exc, BatonError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        found = [e for sub in exc.exceptions for e in _baton_errors(sub)]
        return found if len(found) == len(exc.exceptions) else []
    return []


def service_main(
    name: str,
    serve_for: Callable[[argparse.Namespace], Serve],
    argv: list[str] | None = None,
    *,
    description: str = "",
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    http_metrics: bool = False,
) -> int:
    """Parse the common options, run the service until a signal, return the exit code.

    With BatonTelemetryExporter `prometheus`, a service serves `/metrics` on BatonMetricsListen, unless
    `http_metrics`: it has an HTTP server of its own that serves the route (the API)."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=description)
    parser.add_argument("--config", help="orchestrator-style JSON config file")
    parser.add_argument("--nats", help="NATS URL(s), comma-separated (overrides BatonNatsURLs)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ... (default INFO)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def run() -> None:
        settings = with_nats(load_settings(args.config), args.nats)
        telemetry = setup_telemetry(
            f"baton-{name}", settings.BatonTelemetryExporter, settings.BatonTelemetryEndpoint or None
        )
        if settings.BatonTelemetryExporter == "prometheus" and not http_metrics:
            telemetry.serve_metrics(settings.BatonMetricsListen, "BatonMetricsListen")
        stop = asyncio.Event()
        install_signal_handlers(stop)
        source = ConfigSource(name, args.config, settings, overrides=lambda s: with_nats(s, args.nats))
        install(source)
        reload_on_sighup(source)
        try:
            await serve_for(args)(settings, stop)
        finally:
            telemetry.stop_serving()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BaseException as exc:
        errors = _baton_errors(exc)
        if not errors:
            raise
        for error in errors:
            print(f"baton-{name}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
