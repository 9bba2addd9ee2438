"""OpenTelemetry tracer and meter providers, installed once per process.

Off by default: with exporter "none" no SDK provider is installed, so every tracer and meter is the API's
no-op and instrumentation costs next to nothing. "console" prints spans and metrics (for a developer);
"otlp" ships them over OTLP/HTTP to `endpoint` (default http://127.0.0.1:4318). The OTLP exporter is an
optional package, imported only when asked for, and its absence is a one-line ConfigError.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from libs.errors import ConfigError

Exporter = Literal["none", "console", "otlp"]
EXPORTERS: tuple[str, ...] = ("none", "console", "otlp")
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

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


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
    span_exporter: SpanExporter
    metric_exporter: Any
    if exporter == "console":
        span_exporter, metric_exporter = ConsoleSpanExporter(), ConsoleMetricExporter()
    else:
        span_exporter, metric_exporter = _otlp_exporters(endpoint or DEFAULT_OTLP_ENDPOINT)
    resource = Resource.create({SERVICE_NAME: service_name})
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


def tracer(name: str = "baton") -> trace.Tracer:
    """The tracer for `name` from the global provider (a no-op tracer until telemetry is set up)."""
    return trace.get_tracer(name)
