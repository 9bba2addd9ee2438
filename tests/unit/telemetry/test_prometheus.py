"""The `prometheus` exporter without services: the exposition against the documented names, the
standalone endpoint, the API route, and the deploy files (Grafana dashboard, Prometheus config, compose)
that must use exactly those names and endpoints. Real services are scraped in
tests/integration/telemetry."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from libs.config import load_settings
from libs.errors import ConfigError
from libs.telemetry import build_providers, instruments
from libs.telemetry import setup as telemetry_setup
from libs.telemetry.metrics import PROMETHEUS
from libs.telemetry.setup import Telemetry, split_host_port
from services.api.envelope import ApiError
from services.api.routes import metrics as metrics_route
from tests.unit.telemetry.prom import (
    REPO,
    Scrape,
    Used,
    dashboard,
    dashboard_exprs,
    dashboard_metric_names,
    panel_exprs,
    walk,
)

DEPLOY = REPO / "deploy"
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


@pytest.fixture
def prometheus() -> Iterator[Telemetry]:
    tel = build_providers("baton-test", "prometheus")
    yield tel
    tel.shutdown()


def record_everything(tel: Telemetry) -> None:
    """One observation on every instrument, with the labels the services give it."""
    assert tel.meter_provider is not None
    inst = instruments(tel.meter_provider.get_meter("baton"))
    inst.probe_latency.record(0.004)
    inst.probes.add(3)
    inst.probe_errors.add(1, {"reason": "unreachable"})
    inst.detection_latency.record(1.5, {"analysis": "DeadMaster"})
    inst.failover_duration.record(4.0, {"analysis": "DeadMaster", "outcome": "succeeded"})
    inst.leader("node-a", 7)
    inst.kv_publish_lag.record(0.02, {"dc": "dc1", "result": "published"})
    inst.readmodel_lag.set(0.3, {"stream": "BATON_SNAPSHOTS"})


def exported(tel: Telemetry) -> Scrape:
    body = tel.exposition()
    assert body is not None
    return Scrape(body.decode())


def test_the_exposition_matches_the_documented_series(prometheus: Telemetry) -> None:
    record_everything(prometheus)
    scrape = exported(prometheus)
    for instrument, series in PROMETHEUS.items():
        assert scrape.types.get(series.name) == series.type, (instrument, scrape.types)
        samples = [s for s in scrape.samples if s.name.startswith(series.name)]
        assert samples, instrument
        labels = {k for s in samples for k in s.labels} - {"le"}
        assert labels == set(series.labels), (instrument, labels)
    assert scrape.total("baton_probes_total") == 3
    assert scrape.total("baton_probe_latency_seconds_count") == 1
    assert scrape.find("baton_probe_latency_seconds_bucket", le="0.005")[0].value == 1
    assert scrape.total("baton_recovery_leader", node="node-a") == 1
    assert scrape.total("baton_recovery_epoch", node="node-a") == 7
    # a family nobody documented would be invisible to the dashboard and the docs
    assert set(scrape.types) - {"target_info"} == {s.name for s in PROMETHEUS.values()}


def test_leaving_leadership_keeps_the_epoch_and_drops_the_gauge(prometheus: Telemetry) -> None:
    assert prometheus.meter_provider is not None
    inst = instruments(prometheus.meter_provider.get_meter("baton"))
    inst.leader("node-a", 3)
    inst.leader("node-a", None)
    scrape = exported(prometheus)
    assert scrape.total("baton_recovery_leader", node="node-a") == 0
    assert scrape.total("baton_recovery_epoch", node="node-a") == 3


def test_a_recovery_without_an_end_is_not_a_duration(prometheus: Telemetry) -> None:
    from datetime import UTC, datetime, timedelta

    assert prometheus.meter_provider is not None
    inst = instruments(prometheus.meter_provider.get_meter("baton"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    inst.recovery_closed("DeadMaster", "succeeded", start, None)
    assert exported(prometheus).total("baton_failover_duration_seconds_count") == 0
    inst.recovery_closed("DeadMaster", "failed", start, start + timedelta(seconds=12))
    scrape = exported(prometheus)
    assert scrape.total("baton_failover_duration_seconds_count", outcome="failed") == 1
    assert scrape.total("baton_failover_duration_seconds_sum") == 12


@pytest.mark.parametrize("exporter", ["none", "console"])
def test_other_exporters_have_no_exposition(exporter: str) -> None:
    tel = build_providers("baton-test", exporter)
    try:
        assert tel.exposition() is None
        with pytest.raises(ConfigError, match="BatonMetricsListen"):
            tel.serve_metrics("127.0.0.1:0")
    finally:
        tel.shutdown()


def test_serve_metrics_serves_the_text_format_until_stopped(prometheus: Telemetry) -> None:
    record_everything(prometheus)
    host, port = prometheus.serve_metrics("127.0.0.1:0")
    assert host == "127.0.0.1" and port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        scrape = Scrape(r.read().decode())
    assert scrape.total("baton_probes_total") == 3
    prometheus.stop_serving()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


@pytest.mark.parametrize("listen", ["9464", "localhost:http", "127.0.0.1:70000", ""])
def test_a_bad_listen_address_names_the_key(prometheus: Telemetry, listen: str) -> None:
    with pytest.raises(
        ConfigError, match=f"BatonMetricsListen {re.escape(repr(listen))}: expected HOST:PORT"
    ):
        prometheus.serve_metrics(listen)


def test_a_busy_port_names_the_key(prometheus: Telemetry) -> None:
    _host, port = prometheus.serve_metrics("127.0.0.1:0")
    with pytest.raises(ConfigError, match=f"BatonMetricsListen '127.0.0.1:{port}': cannot serve /metrics"):
        prometheus.serve_metrics(f"127.0.0.1:{port}")


def test_split_host_port() -> None:
    assert split_host_port("0.0.0.0:9464", "K") == ("0.0.0.0", 9464)
    assert split_host_port(":9464", "K") == ("0.0.0.0", 9464)
    assert split_host_port("[::1]:9464", "K") == ("::1", 9464)


async def test_the_api_route_answers_404_unless_prometheus(
    monkeypatch: pytest.MonkeyPatch, prometheus: Telemetry
) -> None:
    monkeypatch.setattr(telemetry_setup, "_installed", None)
    with pytest.raises(ApiError) as refused:
        await metrics_route.metrics()
    assert refused.value.status == 404 and "BatonTelemetryExporter" in refused.value.message
    monkeypatch.setattr(telemetry_setup, "_installed", build_providers("baton-test", "none"))
    with pytest.raises(ApiError):
        await metrics_route.metrics()
    record_everything(prometheus)
    monkeypatch.setattr(telemetry_setup, "_installed", prometheus)
    response = await metrics_route.metrics()
    assert response.media_type is not None and response.media_type.startswith("text/plain")
    assert Scrape(bytes(response.body).decode()).total("baton_probes_total") == 3


# ---- deploy/: the dashboard, Prometheus's config and the compose file -----------------------------


def sample_names() -> set[str]:
    names = set()
    for series in PROMETHEUS.values():
        if series.type == "histogram":
            names |= {series.name + suffix for suffix in HISTOGRAM_SUFFIXES}
        else:
            names.add(series.name + ("_total" if series.type == "counter" else ""))
    return names


def test_sample_names_agree_with_a_real_exposition(prometheus: Telemetry) -> None:
    record_everything(prometheus)
    assert sample_names() == exported(prometheus).names - {"target_info"}


def test_the_dashboard_uses_exactly_the_exported_names() -> None:
    doc = dashboard()
    used = dashboard_metric_names(doc)
    assert used <= sample_names(), sorted(used - sample_names())
    unused = {s.name for s in PROMETHEUS.values() if not any(n.startswith(s.name) for n in used)}
    assert not unused, f"no panel shows {sorted(unused)}"
    exprs = panel_exprs(doc)
    assert all(any("baton_" in e for e in es) for es in exprs.values()), exprs
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for label in ("reason", "analysis", "outcome", "node", "dc", "result", "stream"):  # the real labels
        assert any(label in e for es in exprs.values() for e in es), label


def test_every_dashboard_query_is_promql_on_exported_series_and_labels() -> None:
    promql = pytest.importorskip(
        "promql_parser", reason="promql-parser is not installed (pip install -e .[dev])"
    )
    known_labels = {label for s in PROMETHEUS.values() for label in s.labels} | {
        "le",
        "job",
        "instance",
        "dc",
    }
    for expr in dashboard_exprs(dashboard()):
        used = walk(promql.parse(expr), Used())  # a ValueError names what is wrong
        assert used.names and used.names <= sample_names(), (expr, used.names - sample_names())
        assert used.labels <= known_labels, (expr, used.labels - known_labels)
    with pytest.raises(ValueError):  # the parser does reject bad PromQL
        promql.parse("sum(rate(baton_probes_total[1m])")


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return doc


def role(service: dict[str, Any]) -> str | None:
    cmd = service.get("command") or []
    return cmd[2].removeprefix("services.") if cmd[:2] == ["python", "-m"] else None


def test_prometheus_scrapes_every_baton_process_where_it_serves() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    services = compose()["services"]
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "prometheus" / "baton.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    settings = load_settings(None, env)
    assert settings.BatonTelemetryExporter == "prometheus"
    metrics_port = split_host_port(settings.BatonMetricsListen, "BatonMetricsListen")[1]
    api_port = split_host_port(json.loads((DEPLOY / "config" / "api.json").read_text())["ListenAddress"], "")[
        1
    ]

    targets: dict[str, str] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for group in job["static_configs"]:
            for target in group["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in services, f"{job['job_name']}: {host} is not a compose service"
                want = api_port if role(services[host]) == "api" else metrics_port
                assert int(port) == want, target
                assert job["job_name"] == f"baton-{role(services[host])}", target
                dc = re.fullmatch(job["relabel_configs"][0]["regex"], target)
                assert dc is not None and dc.group(1) == services[host]["labels"]["baton.dc"], target
                targets[host] = target
    baton = {name for name, svc in services.items() if role(svc)}
    assert set(targets) == baton, sorted(baton ^ set(targets))


def test_compose_runs_prometheus_and_grafana_on_the_deploy_files() -> None:
    doc = compose()
    services = doc["services"]
    assert doc["x-baton"]["env_file"] == ["./prometheus/baton.env"]
    for name, expected in {
        "prometheus": ("./prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"),
        "grafana": ("./grafana/baton-dashboard.json", "/var/lib/grafana/dashboards/baton-dashboard.json"),
    }.items():
        mounts = [v.rsplit(":", 1)[0] if v.endswith(":ro") else v for v in services[name]["volumes"]]
        assert f"{expected[0]}:{expected[1]}" in mounts, (name, mounts)
        assert (DEPLOY / expected[0]).is_file()
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    boards = yaml.safe_load((provisioning / "dashboards" / "baton.yml").read_text())
    assert boards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_docs_name_every_series() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = [s.name for s in PROMETHEUS.values() if s.name not in text]
    assert not missing, missing
    assert "BatonMetricsListen" in text
