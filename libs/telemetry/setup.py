"""OpenTelemetry tracer and meter providers, installed once per process.

Off by default: with exporter "none" no SDK provider is installed, so every tracer and meter is the API's
no-op and instrumentation costs next to nothing. "console" prints spans and metrics (for a developer);
"otlp" ships them over OTLP/HTTP to `endpoint` (default http://127.0.0.1:4318). The OTLP exporter is an
optional package, imported only when asked for, and its absence is a one-line ConfigError.

"prometheus" keeps metrics for scraping instead (OpenTelemetry's Prometheus reader, on a registry of
this process's own): `Telemetry.exposition()` renders them in the Prometheus text format — the API
serves that at `GET /metrics` — and `serve_metrics(listen)` serves it on a port of its own for the
services without an HTTP server (`BatonMetricsListen`). Traces are not exported with "prometheus".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal
from wsgiref.simple_server import WSGIServer

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from libs.errors import ConfigError

Exporter = Literal["none", "console", "otlp", "prometheus"]
EXPORTERS: tuple[str, ...] = ("none", "console", "otlp", "prometheus")
DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"
OTLP_PACKAGE = "opentelemetry-exporter-otlp-proto-http"

log = logging.getLogger(__name__)


@dataclass
class Telemetry:
    """What `setup_telemetry` installed; `shutdown()` flushes what is buffered."""

    service_name: str
    exporter: str
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    registry: CollectorRegistry | None = None  # prometheus: what /metrics renders
    servers: list[WSGIServer] = field(default_factory=list)  # prometheus: `serve_metrics` endpoints

    def exposition(self) -> bytes | None:
        """The metrics in the Prometheus text format, or None unless the exporter is "prometheus"."""
        return None if self.registry is None else generate_latest(self.registry)

    def serve_metrics(self, listen: str, key: str = "BatonMetricsListen") -> tuple[str, int]:
        """Serve `exposition()` over HTTP on `listen` (`host:port`, port 0: any free one) from a daemon
        thread until `shutdown()`; returns the address bound. A bad or busy address is a ConfigError
        naming `key`."""
        if self.registry is None:
            raise ConfigError(f'{key}: metrics are served only with BatonTelemetryExporter "prometheus"')
        host, port = split_host_port(listen, key)
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            reason = exc.strerror or exc
            raise ConfigError(f"{key} {listen!r}: cannot serve /metrics there: {reason}") from exc
        self.servers.append(server)
        bound = server.server_address
        log.info("metrics: serving /metrics on http://%s:%d", host, bound[1])
        return host, int(bound[1])

    def stop_serving(self) -> None:
        """Close the endpoints `serve_metrics` opened."""
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()

    def shutdown(self) -> None:
        self.stop_serving()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def split_host_port(value: str, key: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT` → (host, port); a ConfigError naming `key`."""
    host, colon, port = value.strip().rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{key} {value!r}: expected HOST:PORT")
    return (host.strip("[]") or "0.0.0.0"), int(port)


_installed: Telemetry | None = None


def _otlp_exporters(endpoint: str) -> tuple[SpanExporter, Any]:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            f"telemetry exporter 'otlp' needs the {OTLP_PACKAGE} package (pip install {OTLP_PACKAGE})"
        ) from exc
    base = endpoint.rstrip("/")
    return OTLPSpanExporter(endpoint=f"{base}/v1/traces"), OTLPMetricExporter(endpoint=f"{base}/v1/metrics")


def build_providers(
    service_name: str, exporter: str, endpoint: str | None = None, *, metric_interval_s: float = 60.0
) -> Telemetry:
    """Build (without installing) the providers for `exporter`. "none" builds nothing."""
    if exporter not in EXPORTERS:
        raise ConfigError(f"telemetry exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    if exporter == "none":
        return Telemetry(service_name, exporter)
    resource = Resource.create({SERVICE_NAME: service_name})
    if exporter == "prometheus":
        registry = CollectorRegistry(auto_describe=True)
        # scope labels (otel_scope_name...) on every series say nothing a Baton operator needs
        scraped = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
        provider = MeterProvider(resource=resource, metric_readers=[scraped])
        return Telemetry(service_name, exporter, meter_provider=provider, registry=registry)
    span_exporter: SpanExporter
    metric_exporter: Any
    if exporter == "console":
        span_exporter, metric_exporter = ConsoleSpanExporter(), ConsoleMetricExporter()
    else:
        span_exporter, metric_exporter = _otlp_exporters(endpoint or DEFAULT_OTLP_ENDPOINT)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    reader: MetricReader = PeriodicExportingMetricReader(
        metric_exporter, export_interval_millis=metric_interval_s * 1000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    return Telemetry(service_name, exporter, tracer_provider, meter_provider)


def setup_telemetry(
    service_name: str, exporter: str = "none", endpoint: str | None = None, *, metric_interval_s: float = 60.0
) -> Telemetry:
    """Install the process-wide tracer and meter providers once; later calls return the first setup.

    OpenTelemetry allows the global providers to be set only once per process, so `baton up` (all
    services in one process) sets up telemetry once for the process, not once per service.
    """
    global _installed
    if _installed is not None:
        if (_installed.service_name, _installed.exporter) != (service_name, exporter):
            log.debug("telemetry already set up as %s/%s", _installed.service_name, _installed.exporter)
        return _installed
    tel = build_providers(service_name, exporter, endpoint, metric_interval_s=metric_interval_s)
    if tel.tracer_provider is not None:
        trace.set_tracer_provider(tel.tracer_provider)
    if tel.meter_provider is not None:
        metrics.set_meter_provider(tel.meter_provider)
    _installed = tel
    return tel


def installed() -> Telemetry | None:
    """What `setup_telemetry` installed in this process (None before it ran)."""
    return _installed


def tracer(name: str = "baton") -> trace.Tracer:
    """The tracer for `name` from the global provider (a no-op tracer until telemetry is set up)."""
    return trace.get_tracer(name)
