"""Baton's metric instruments, created from the global meter (no-ops until telemetry is set up).

All durations are in seconds (the OpenTelemetry convention), with bucket boundaries suited to each:
a probe takes milliseconds, a detection a few seconds, a failover seconds to minutes. Labels are kept
to small, bounded sets (an analysis code, an outcome, a data center, a stream, a node name): never an
instance or a cluster, so a fleet of thousands of servers does not make thousands of series.

With the `prometheus` exporter they are exposed under the names of `PROMETHEUS` (OpenTelemetry's
Prometheus naming: dots become underscores, the unit `s` adds `_seconds`, counters end in `_total`;
a histogram is the `_bucket`, `_count` and `_sum` series). docs/architecture.md (Observability) lists
them; tests/unit/telemetry checks the exposition, the docs and the Grafana dashboard against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import metrics

PROBE_LATENCY = "baton.probe.latency"
PROBES = "baton.probes"
PROBE_ERRORS = "baton.probe.errors"
DETECTION_LATENCY = "baton.detection.latency"
FAILOVER_DURATION = "baton.failover.duration"
RECOVERY_LEADER = "baton.recovery.leader"
RECOVERY_EPOCH = "baton.recovery.epoch"
KV_PUBLISH_LAG = "baton.kv.publish.lag"
READMODEL_LAG = "baton.readmodel.lag"


@dataclass(frozen=True)
class Series:
    """How an instrument appears in the Prometheus text format."""

    name: str  # the family name (a counter's samples add `_total`, a histogram's `_bucket`...)
    type: str  # counter, gauge or histogram
    labels: tuple[str, ...]


PROMETHEUS: dict[str, Series] = {
    PROBE_LATENCY: Series("baton_probe_latency_seconds", "histogram", ()),
    PROBES: Series("baton_probes", "counter", ()),
    PROBE_ERRORS: Series("baton_probe_errors", "counter", ("reason",)),
    DETECTION_LATENCY: Series("baton_detection_latency_seconds", "histogram", ("analysis",)),
    FAILOVER_DURATION: Series("baton_failover_duration_seconds", "histogram", ("analysis", "outcome")),
    RECOVERY_LEADER: Series("baton_recovery_leader", "gauge", ("node",)),
    RECOVERY_EPOCH: Series("baton_recovery_epoch", "gauge", ("node",)),
    KV_PUBLISH_LAG: Series("baton_kv_publish_lag_seconds", "histogram", ("dc", "result")),
    READMODEL_LAG: Series("baton_readmodel_lag_seconds", "gauge", ("stream",)),
}

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DETECTION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
FAILOVER_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
KV_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Instruments:
    probe_latency: metrics.Histogram
    probes: metrics.Counter
    probe_errors: metrics.Counter
    detection_latency: metrics.Histogram
    failover_duration: metrics.Histogram
    recovery_leader: Any  # metrics.Gauge (synchronous gauge; the API names it `_Gauge` in some versions)
    recovery_epoch: Any
    kv_publish_lag: metrics.Histogram
    readmodel_lag: Any

    def leader(self, node: str, epoch: int | None) -> None:
        """This process's recovery node is (epoch given) or is not (None) the leader."""
        self.recovery_leader.set(0 if epoch is None else 1, {"node": node})
        if epoch is not None:
            self.recovery_epoch.set(epoch, {"node": node})

    def recovery_closed(
        self, analysis: str, outcome: str, since: datetime | None, ended: datetime | None
    ) -> None:
        """A recovery ended: its duration (detection, or start for manual ones, to close) by outcome."""
        if since is None or ended is None:
            return
        seconds = max(0.0, (ended - since).total_seconds())
        self.failover_duration.record(seconds, {"analysis": analysis, "outcome": outcome})


def instruments(meter: metrics.Meter | None = None) -> Instruments:
    """Create (or look up: the SDK dedupes by name) Baton's instruments on `meter` or the global one."""
    m = meter or metrics.get_meter("baton")
    return Instruments(
        probe_latency=m.create_histogram(
            PROBE_LATENCY,
            unit="s",
            description="time to probe one instance",
            explicit_bucket_boundaries_advisory=PROBE_BUCKETS,
        ),
        probes=m.create_counter(PROBES, description="probes completed (reachable or not)"),
        probe_errors=m.create_counter(
            PROBE_ERRORS,
            description="probes that failed: reason=unreachable (no answer), partial (a later query "
            "failed) or publish (the snapshot could not be published to NATS)",
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
            description="time from detection (or a manual request) to a recovery's close, by outcome",
            explicit_bucket_boundaries_advisory=FAILOVER_BUCKETS,
        ),
        recovery_leader=m.create_gauge(
            RECOVERY_LEADER, description="1 while this recovery node holds the recovery lease, else 0"
        ),
        recovery_epoch=m.create_gauge(
            RECOVERY_EPOCH, description="the fencing epoch of this node's latest leadership term"
        ),
        kv_publish_lag=m.create_histogram(
            KV_PUBLISH_LAG,
            unit="s",
            description="time from a master record reaching the kvpublisher to its outcome in one data "
            "center's store: result=published, failed (retried) or stale (refused)",
            explicit_bucket_boundaries_advisory=KV_BUCKETS,
        ),
        readmodel_lag=m.create_gauge(
            READMODEL_LAG,
            unit="s",
            description="age of the newest message the API's projector committed to the read model, at "
            "commit (JetStream store time to commit)",
        ),
    )
