from __future__ import annotations

import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs.errors import ConfigError
from libs.telemetry import build_providers, extract_context, inject_headers, instruments
from libs.telemetry.metrics import DETECTION_LATENCY, FAILOVER_DURATION, PROBE_LATENCY


def _tracer() -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_trace_context_survives_headers() -> None:
    tracer, exporter = _tracer()
    with tracer.start_as_current_span("publisher") as pub:
        headers = inject_headers({"Nats-Msg-Id": "x"})
    assert headers["Nats-Msg-Id"] == "x"
    assert headers["traceparent"].startswith("00-")
    # The consumer side: nothing shared but the headers.
    ctx = extract_context(dict(headers))
    with tracer.start_as_current_span("consumer", context=ctx) as con:
        pass
    assert con.get_span_context().trace_id == pub.get_span_context().trace_id
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["consumer"].parent is not None
    assert spans["consumer"].parent.span_id == pub.get_span_context().span_id


def test_no_span_means_no_trace_headers() -> None:
    assert inject_headers() == {}
    ctx = extract_context(None)
    assert not trace.get_current_span(ctx).get_span_context().is_valid
    bad = extract_context({"traceparent": "garbage"})
    assert not trace.get_current_span(bad).get_span_context().is_valid


def test_none_builds_nothing() -> None:
    tel = build_providers("baton-test", "none")
    assert tel.tracer_provider is None and tel.meter_provider is None
    tel.shutdown()


def test_console_builds_providers() -> None:
    tel = build_providers("baton-test", "console")
    assert tel.tracer_provider is not None and tel.meter_provider is not None
    attrs = tel.tracer_provider.resource.attributes
    assert attrs["service.name"] == "baton-test"
    tel.shutdown()


def test_unknown_exporter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="jaeger"):
        build_providers("baton-test", "jaeger")


def test_missing_otlp_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-http"):
        build_providers("baton-test", "otlp")


def test_instruments_record_in_seconds() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    inst = instruments(provider.get_meter("test"))
    inst.probe_latency.record(0.004)
    inst.detection_latency.record(1.5)
    inst.failover_duration.record(12.0)
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert set(metrics) == {PROBE_LATENCY, DETECTION_LATENCY, FAILOVER_DURATION}
    assert all(m.unit == "s" for m in metrics.values())
    probe = metrics[PROBE_LATENCY].data.data_points[0]
    assert isinstance(probe, HistogramDataPoint)
    assert probe.count == 1 and probe.explicit_bounds[0] == 0.001
