"""Baton's metric instruments, created from the global meter (no-ops until telemetry is set up).

All durations are in seconds (the OpenTelemetry convention), with bucket boundaries suited to each:
a probe takes milliseconds, a detection a few seconds, a failover seconds to minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import metrics

PROBE_LATENCY = "baton.probe.latency"
DETECTION_LATENCY = "baton.detection.latency"
FAILOVER_DURATION = "baton.failover.duration"

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DETECTION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
FAILOVER_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True)
class Instruments:
    probe_latency: metrics.Histogram
    detection_latency: metrics.Histogram
    failover_duration: metrics.Histogram


def instruments(meter: metrics.Meter | None = None) -> Instruments:
    """Create (or look up: the SDK dedupes by name) Baton's histograms on `meter` or the global one."""
    m = meter or metrics.get_meter("baton")
    return Instruments(
        probe_latency=m.create_histogram(
            PROBE_LATENCY,
            unit="s",
            description="time to probe one instance",
            explicit_bucket_boundaries_advisory=PROBE_BUCKETS,
        ),
        detection_latency=m.create_histogram(
            DETECTION_LATENCY,
            unit="s",
            description="time from a problem's first evidence to its detection event",
            explicit_bucket_boundaries_advisory=DETECTION_BUCKETS,
        ),
        failover_duration=m.create_histogram(
            FAILOVER_DURATION,
            unit="s",
            description="time from detection to a recovery's close",
            explicit_bucket_boundaries_advisory=FAILOVER_BUCKETS,
        ),
    )
