"""Secrets never leave Baton (issue 17, item 7): `baton up --sandbox` runs with distinctive passwords
(MySQL topology user, replication user, API token, Consul ACL token, HTTP basic password; the topology
password read from the environment through `${VAR}`), goes through a detection and a failover with
hooks, and then every channel is searched for them: the service logs, every message of every JetStream
stream (BATON_* events and audit, KV buckets), every GET route of the API, the hooks' environment and
arguments, and the files Baton keeps in its state directory (the read model, the NATS store).

MySQL's own files (the sandbox's data dirs: master.info keeps the replication password, as MySQL does)
are not Baton's channel and are left out.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import asyncmy
import httpx
import nats.js.errors
import pytest

from libs.bus.connection import connect
from libs.sandbox.sandbox import TOPOLOGY_GRANTS
from tests.consul_server import ConsulTestServer
from tests.integration.e2e.test_baton_up import run_baton_up, wait_until, whole_cluster

SECRETS = {
    "MySQLTopologyPassword": "TopoPw-7f3a9c-honesty",
    "MySQLReplicationPassword": "ReplPw-2b8e41-honesty",
    "BatonAuthTokens": "ApiTok-9d1c55-honesty-0123456789",
    "ConsulAclToken": "ConsulTok-61aa0f-honesty",
    "HTTPAuthPassword": "HttpPw-0c7d2e-honesty",
}
TOPO_USER, REPL_USER = "honest_topo", "honest_repl"
ENV_VAR = "HONESTY_TOPO_PW"  # the topology password reaches Baton as `${HONESTY_TOPO_PW}`


def _config(consul: ConsulTestServer, hooks: Path) -> dict[str, Any]:
    out = f"{hooks}/{{kind}}-$$"
    hook = f'env > {out}.env; echo "$@" {{failureType}} {{successorHost}} > {out}.args'
    return {
        "MySQLTopologyUser": TOPO_USER,
        "MySQLTopologyPassword": "${" + ENV_VAR + "}",
        "MySQLReplicationUser": REPL_USER,
        "MySQLReplicationPassword": SECRETS["MySQLReplicationPassword"],
        "AuthenticationMethod": "token",
        "BatonAuthTokens": [{"Name": "ops", "Token": SECRETS["BatonAuthTokens"], "Role": "admin"}],
        "HTTPAuthUser": "admin",
        "HTTPAuthPassword": SECRETS["HTTPAuthPassword"],
        "ConsulAddress": consul.address,
        "ConsulAclToken": SECRETS["ConsulAclToken"],
        "KVClusterMasterPrefix": "mysql/master",
        "OnFailureDetectionProcesses": [hook.replace("{kind}", "detection")],
        "PreFailoverProcesses": [hook.replace("{kind}", "pre")],
        "PostMasterFailoverProcesses": [hook.replace("{kind}", "post-master")],
        "PostFailoverProcesses": [hook.replace("{kind}", "post")],
    }


def _leaks(where: str, data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return [f"{key} in {where}" for key, secret in SECRETS.items() if secret.encode() in raw]


async def _create_users(state: Path) -> None:
    """The sandbox's master gets Baton's users with the distinctive passwords (binlogged: every replica
    gets them too)."""
    doc = json.loads((state / "sandbox" / "sandbox.json").read_text())
    master = next(n for n in doc["nodes"] if n["name"] == "master")
    conn = await asyncmy.connect(unix_socket=master["socket"], user="root", password="", autocommit=True)
    try:
        async with conn.cursor() as cur:
            for user, key, grants in (
                (TOPO_USER, "MySQLTopologyPassword", TOPOLOGY_GRANTS),
                (REPL_USER, "MySQLReplicationPassword", "REPLICATION SLAVE"),
            ):
                await cur.execute(
                    f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY %s", (SECRETS[key],)
                )
                await cur.execute(f"GRANT {grants} ON *.* TO '{user}'@'%'")
    finally:
        conn.close()


async def _jetstream_leaks(url: str) -> tuple[list[str], int]:
    """Every message of every stream (headers and data)."""
    leaks: list[str] = []
    count = 0
    async with await connect(url, "secrets-test") as bus:
        for info in await bus.js.streams_info():
            name, state = info.config.name or "", info.state
            if not state.messages:
                continue
            for seq in range(state.first_seq, state.last_seq + 1):
                try:
                    msg = await bus.js.get_msg(name, seq=seq)
                except nats.js.errors.NotFoundError:  # deleted/expired messages leave gaps
                    continue
                count += 1
                blob = (msg.data or b"") + json.dumps(msg.headers or {}).encode()
                leaks += _leaks(f"stream {name} seq {seq} ({msg.subject})", blob)
    return leaks, count


def _fill(path: str, values: dict[str, str]) -> str | None:
    def sub(m: re.Match[str]) -> str:
        return values.get(m.group(1).lower(), "")

    filled = re.sub(r"\{([^}]+)\}", sub, path)
    return None if "//" in filled.replace("://", "") else filled


async def test_no_secret_in_any_channel_after_a_failover(
    tmp_path: Path, consul_server: ConsulTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, SECRETS["MySQLTopologyPassword"])
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    auth = {"Authorization": f"Bearer {SECRETS['BatonAuthTokens']}"}
    leaks: list[str] = []
    routes_read = 0
    async with (
        run_baton_up(tmp_path, _config(consul_server, hooks)) as (api, state),
        httpx.AsyncClient(base_url=api, timeout=10, headers=auth) as http,
    ):
        await wait_until("the sandbox", lambda: _exists(state / "sandbox" / "sandbox.json"), timeout=60)
        await _create_users(state)
        await wait_until("the sandbox discovered (4 instances)", lambda: whole_cluster(http), timeout=90)
        doc = json.loads((state / "sandbox" / "sandbox.json").read_text())
        master = next(n for n in doc["nodes"] if n["name"] == "master")
        os.kill(int(master["pid"]), signal.SIGKILL)

        async def recovered() -> dict[str, Any] | None:
            r = await http.get("/api/audit-recovery")
            done = [rec for rec in r.json() if rec["IsSuccessful"]] if r.status_code == 200 else []
            return done[0] if done else None

        record = await wait_until("a successful recovery", recovered, timeout=30)
        successor = record["SuccessorKey"]
        await wait_until("the post-failover hooks", lambda: _exists_glob(hooks, "post-*.env", 2), timeout=30)

        # Every GET route of the API, path parameters filled with the cluster's real names.
        spec = (await http.get("/openapi.json")).json()
        values = {
            "host": successor["Hostname"],
            "port": str(successor["Port"]),
            "hostname": successor["Hostname"],
            "clustername": record.get("ClusterName", ""),
            "clusterhint": f"{successor['Hostname']}:{successor['Port']}",
            "alias": record.get("ClusterAlias", ""),
            "instance": f"{successor['Hostname']}:{successor['Port']}",
        }
        for path, ops in spec["paths"].items():
            if "get" not in ops or path.endswith("/events") or "stream" in path:
                continue  # the SSE stream never ends (its events are the JetStream events checked below)
            url = _fill(path, values)
            if url is None:
                continue
            r = await http.get(url)
            routes_read += 1
            leaks += _leaks(f"GET {url} ({r.status_code})", r.content + json.dumps(dict(r.headers)).encode())
        nats_port = json.loads((state / "up.json").read_text())["nats_port"]
        stream_leaks, messages = await _jetstream_leaks(f"nats://127.0.0.1:{nats_port}")
        leaks += stream_leaks

    log = (tmp_path / "up.log").read_text(errors="replace")
    leaks += _leaks("the service logs (baton up's output)", log)
    hook_files = sorted(hooks.iterdir())
    for f in hook_files:
        leaks += _leaks(f"hook output {f.name}", f.read_bytes())
    for f in state.rglob("*"):
        if f.is_file() and "sandbox" not in f.relative_to(state).parts:
            leaks += _leaks(f"state file {f.relative_to(state)}", f.read_bytes())

    # The search looked at something real: a failover happened, hooks ran, routes and events were read.
    kinds = {f.name.split("-")[0] for f in hook_files}
    assert {"detection", "pre", "post"} <= kinds, hook_files
    assert routes_read >= 20 and messages >= 20, (routes_read, messages)
    assert "DeadMaster" in log or "recovery" in log.lower()
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)


async def _exists(path: Path) -> bool:
    return path.exists()


async def _exists_glob(directory: Path, pattern: str, at_least: int) -> bool:
    return len(list(directory.glob(pattern))) >= at_least
