"""NATS security (issue 17 item 3): TLS with a CA and a client certificate, user/password, token and NKey
credentials, from the BatonNats* keys, against real nats-servers that require them.

Every service connects through `libs.bus.connection.connect(..., security=nats_security(settings))`;
`test_every_nats_connect_passes_the_security` keeps it so, and the prober runs here against a secured
server (and a TLS-only mariadbd) end to end.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nkeys  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from libs import processes
from libs.bus import messages, subjects
from libs.bus.connection import connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer, ServerAuth, ServerTLS, free_port, http_get
from libs.cli.up import NATS_SECURITY_KEYS
from libs.config import ConfigError, Settings
from libs.config.derive import nats_security
from libs.errors import BusError
from libs.models import InstanceSnapshot
from libs.models.events import Event
from libs.sandbox import Sandbox
from tests.fixtures.certs import Pki
from tests.fixtures.natsjwt import make_operator
from tests.fixtures.sandbox import SandboxFactory
from tests.integration.tls.test_mysql_tls import X509_PASSWORD, X509_USER, add_x509_user, mutual, tls_spec

NATS_USER = "baton-svc"
NATS_PASSWORD = "nats-Pw-91c2e7d4"  # distinctive, so a leak is found by grep
NATS_TOKEN = "nats-Tok-5be01f9a77"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def secure_nats(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[NatsServer]:
    """TLS with client verification (mutual TLS) and a users list: a password user and an NKey user."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    store = tmp_path_factory.mktemp("nats-secure")
    (store / "user.nk").write_bytes(seed)
    tls = ServerTLS(str(pki.server_cert), str(pki.server_key), str(pki.ca_cert), verify=True)
    auth = ServerAuth(users=((NATS_USER, NATS_PASSWORD),), nkeys=(public,))
    with NatsServer(store, tls=tls, auth=auth) as server:
        yield server


def nats_settings(server: NatsServer, pki: Pki, **keys: Any) -> Settings:
    base: dict[str, Any] = {
        "BatonNatsURLs": [server.url],
        "BatonNatsCAFile": str(pki.ca_cert),
        "BatonNatsCertFile": str(pki.client_cert),
        "BatonNatsKeyFile": str(pki.client_key),
        "BatonNatsUser": NATS_USER,
        "BatonNatsPassword": SecretStr(NATS_PASSWORD),
    }
    return Settings(**(base | keys))


async def test_connect_provision_publish_over_tls_with_a_password(secure_nats: NatsServer, pki: Pki) -> None:
    assert secure_nats.url.startswith("tls://")
    settings = nats_settings(secure_nats, pki)
    async with await connect(settings.BatonNatsURLs, "tls-test", security=nats_security(settings)) as bus:
        await provision(bus.js)
        event = Event(type="detection", source="analyzer", cluster="c1", data={"analysis": "DeadMaster"})
        ack = await messages.publish_event(bus.js, subjects.detection_subject("c1"), event)
        raw = await bus.js.get_msg("BATON_DETECTIONS", seq=ack.seq)
        assert Event.model_validate_json(raw.data or b"") == event
        assert bus.nc._transport is not None  # the socket is a TLS one
        writer = bus.nc._transport._io_writer  # type: ignore[attr-defined]
        assert writer.get_extra_info("ssl_object") is not None


async def test_a_nats_scheme_url_still_gets_tls(secure_nats: NatsServer, pki: Pki) -> None:
    """`nats://` to a server that requires TLS: the configured CA and client certificate are used."""
    url = secure_nats.url.replace("tls://", "nats://")
    settings = nats_settings(secure_nats, pki, BatonNatsURLs=[url])
    async with await connect(url, "tls-test", security=nats_security(settings)) as bus:
        await bus.nc.flush()


async def test_wrong_password_is_a_clear_error_without_the_password(
    secure_nats: NatsServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-Pw-3a8d66"
    settings = nats_settings(secure_nats, pki, BatonNatsPassword=SecretStr(wrong))
    with caplog.at_level(logging.DEBUG), pytest.raises(BusError) as err:
        await connect(
            settings.BatonNatsURLs, "tls-test", security=nats_security(settings), connect_timeout_s=3
        )
    assert "authorization violation" in str(err.value).lower(), err.value
    assert wrong not in str(err.value) and wrong not in caplog.text
    assert NATS_PASSWORD not in caplog.text and NATS_PASSWORD not in repr(settings)


async def test_without_a_client_certificate_the_server_refuses(secure_nats: NatsServer, pki: Pki) -> None:
    settings = nats_settings(secure_nats, pki, BatonNatsCertFile="", BatonNatsKeyFile="")
    with pytest.raises(BusError, match="cannot connect to NATS"):
        await connect(
            settings.BatonNatsURLs, "tls-test", security=nats_security(settings), connect_timeout_s=3
        )


async def test_a_server_certificate_of_another_ca_is_refused(
    secure_nats: NatsServer, pki: Pki, other_pki: Pki
) -> None:
    settings = nats_settings(secure_nats, pki, BatonNatsCAFile=str(other_pki.ca_cert))
    with pytest.raises(BusError) as err:
        await connect(
            settings.BatonNatsURLs, "tls-test", security=nats_security(settings), connect_timeout_s=3
        )
    assert "certificate verify failed" in str(err.value).lower(), err.value


async def test_nkey_seed_file(secure_nats: NatsServer, pki: Pki) -> None:
    seed_file = secure_nats.store_dir / "user.nk"
    settings = nats_settings(
        secure_nats,
        pki,
        BatonNatsUser="",
        BatonNatsPassword=SecretStr(""),
        BatonNatsNKeySeedFile=str(seed_file),
    )
    async with await connect(settings.BatonNatsURLs, "nkey-test", security=nats_security(settings)) as bus:
        await provision(bus.js)


async def test_creds_file_against_an_operator_mode_server(tmp_path: Path, pki: Pki) -> None:
    """BatonNatsCredsFile (user JWT + NKey seed) against a nats-server in operator (JWT) mode, over TLS;
    a user of another operator is refused."""
    auth, creds = make_operator(tmp_path / "jwt")
    tls = ServerTLS(str(pki.server_cert), str(pki.server_key))
    with NatsServer(tmp_path / "operator", tls=tls, auth=auth) as server:
        settings = Settings(
            BatonNatsURLs=[server.url], BatonNatsCAFile=str(pki.ca_cert), BatonNatsCredsFile=str(creds)
        )
        async with await connect(server.url, "creds", security=nats_security(settings)) as bus:
            await provision(bus.js)
            ack = await bus.js.publish(subjects.audit_subject("creds-test"), b"{}")
            assert ack.stream == "BATON_AUDIT"
        _, stranger = make_operator(tmp_path / "other-operator")
        other = settings.model_copy(update={"BatonNatsCredsFile": str(stranger)})
        with pytest.raises(BusError, match="cannot connect to NATS"):
            await connect(server.url, "creds", security=nats_security(other), connect_timeout_s=2)


async def test_tls_configured_but_not_offered_is_refused_before_sending_the_password(
    tmp_path: Path, pki: Pki
) -> None:
    """A plaintext server that would accept the password: with TLS configured, Baton refuses it instead
    of going on in plaintext (and hands nats-py the password only once TLS is known to be on)."""
    auth = ServerAuth(users=((NATS_USER, NATS_PASSWORD),))
    with NatsServer(tmp_path / "plain", auth=auth) as plain:
        settings = nats_settings(plain, pki, BatonNatsCertFile="", BatonNatsKeyFile="")
        with pytest.raises(BusError, match="does not offer TLS"):
            await connect(plain.url, "tls-test", security=nats_security(settings), connect_timeout_s=2)
        no_tls = settings.model_copy(update={"BatonNatsCAFile": ""})
        async with await connect(plain.url, "plain", security=nats_security(no_tls)) as bus:  # control
            await bus.nc.flush()


async def test_token(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "token", auth=ServerAuth(token=NATS_TOKEN)) as server:
        good = Settings(BatonNatsURLs=[server.url], BatonNatsToken=SecretStr(NATS_TOKEN))
        async with await connect(server.url, "token", security=nats_security(good)) as bus:
            await provision(bus.js)
        bad = good.model_copy(update={"BatonNatsToken": SecretStr("not-the-token-123")})
        with pytest.raises(BusError) as err:
            await connect(server.url, "token", security=nats_security(bad), connect_timeout_s=2)
        assert "authorization violation" in str(err.value).lower()
        assert "not-the-token-123" not in str(err.value)


def test_config_errors_name_the_key(tmp_path: Path, pki: Pki) -> None:
    both = Settings(BatonNatsUser="u", BatonNatsToken=SecretStr("t" * 20))
    with pytest.raises(ConfigError, match=r"^BatonNatsToken: only one NATS authentication"):
        nats_security(both)
    with pytest.raises(ConfigError, match=r"^BatonNatsCredsFile: .*missing\.creds"):
        nats_security(Settings(BatonNatsCredsFile=str(tmp_path / "missing.creds")))
    with pytest.raises(ConfigError, match=r"^BatonNatsCAFile: .*nope\.pem"):
        nats_security(Settings(BatonNatsCAFile=str(tmp_path / "nope.pem")))
    with pytest.raises(ConfigError, match=r"^BatonNatsKeyFile: "):
        nats_security(Settings(BatonNatsCertFile=str(pki.client_cert)))
    with pytest.raises(ConfigError, match=r"^BatonNatsPassword: "):
        nats_security(Settings(BatonNatsPassword=SecretStr("p")))
    assert "nats-Pw" not in repr(
        nats_security(Settings(BatonNatsUser="u", BatonNatsPassword=SecretStr("nats-Pw")))
    )


def _connect_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "libs.bus.connection"
        and any(alias.name == "connect" for alias in node.names)
        for node in ast.walk(tree)
    )
    if not imported:
        return []
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "connect"
    ]


def test_every_nats_connect_passes_the_security() -> None:
    """Every NATS connection of a service or of the CLI is made with the BatonNats* security: a new
    call of `connect` without `security=` fails here."""
    calls: dict[str, int] = {}
    for path in [*ROOT.joinpath("libs").rglob("*.py"), *ROOT.joinpath("services").rglob("*.py")]:
        for call in _connect_calls(path):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            assert any(kw.arg == "security" for kw in call.keywords), f"{where}: connect() without security="
            calls[where] = 1
    services = {w.split("/")[1] for w in calls if w.startswith("services/")}
    assert services >= {"prober", "analyzer", "recovery", "api", "kvpublisher"}, calls
    assert any(w.startswith("libs/cli/") for w in calls), calls


async def test_the_prober_service_runs_against_secured_nats_and_tls_mysql(
    secure_nats: NatsServer, pki: Pki, sandbox_factory: SandboxFactory
) -> None:
    """The prober (its real `serve`) with every security key set: it connects to the TLS + auth NATS,
    probes a TLS-only mariadbd as a REQUIRE X509 user, and publishes a reachable snapshot."""
    from services.prober.service import serve

    sandbox: Sandbox = await sandbox_factory(tls_spec(pki))
    await add_x509_user(sandbox)
    master = sandbox.key("master")
    settings = nats_settings(
        secure_nats,
        pki,
        MySQLTopologyUser=X509_USER,
        MySQLTopologyPassword=SecretStr(X509_PASSWORD),
        DiscoverySeeds=[str(master)],
        MySQLHostnameResolveMethod="@@report_host",
        HostnameResolveMethod="none",
        InstancePollSeconds=1,
        **mutual(pki),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        async with await connect(settings.BatonNatsURLs, "observer", security=nats_security(settings)) as bus:
            snap = await _reachable_snapshot(bus.js, subjects.snapshot_subject(master), task)
        assert snap.key == master and snap.reachable
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _reachable_snapshot(js: Any, subject: str, task: asyncio.Task[None]) -> InstanceSnapshot:
    deadline = asyncio.get_running_loop().time() + 60
    last: InstanceSnapshot | None = None
    while asyncio.get_running_loop().time() < deadline:
        if task.done():
            task.result()  # raises the service's failure
            raise AssertionError("the prober stopped by itself")
        try:
            msg = await js.get_last_msg("BATON_SNAPSHOTS", subject)
            last = InstanceSnapshot.model_validate_json(msg.data)
            if last.reachable:
                return last
        except Exception:  # noqa: S110 - not there yet (no stream, no message)
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"no reachable snapshot of {subject} in 60 s (last: {last})")


def _baton(*args: str) -> list[str]:
    return [sys.executable, "-c", "from libs.cli.main import main; main()", *args]


async def test_baton_up_with_nats_runs_every_service_on_the_secured_server(
    secure_nats: NatsServer, pki: Pki, tmp_path: Path
) -> None:
    """`baton up --nats URL` with the BatonNats* keys in its config: every service it runs connects to
    the TLS + password server (seen in the server's connection list by client name)."""
    config = tmp_path / "baton.json"
    keys = nats_settings(secure_nats, pki).model_dump(
        mode="json", include={*NATS_SECURITY_KEYS, "BatonNatsURLs"}
    )
    keys |= {"BatonNatsPassword": NATS_PASSWORD, "MySQLTopologyUser": "baton"}
    config.write_text(json.dumps(keys))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    proc = subprocess.Popen(
        [*_baton("up", "--config", str(config), "--state-dir", str(tmp_path / "state"), "--nats",
                 secure_nats.url, "--listen", f"127.0.0.1:{port}")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        names: set[str] = set()
        deadline = time.monotonic() + 90
        wanted = {"baton-prober", "baton-analyzer", "baton-recovery", "baton-api"}
        while time.monotonic() < deadline and proc.poll() is None:
            status, body = http_get(secure_nats.host, secure_nats.monitor_port, "/connz?limit=100")
            if status == 200:
                names = {str(c.get("name", "")) for c in json.loads(body).get("connections", [])}
                if all(any(n.startswith(w) for n in names) for w in wanted):
                    break
            await asyncio.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert all(any(n.startswith(w) for n in names) for w in wanted), names
    finally:
        processes.stop(proc, 60)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert NATS_PASSWORD not in stderr
    assert "eof_received" not in stderr  # asyncio's TLS-close noise is filtered (libs/bus/connection.py)


def test_baton_up_without_nats_refuses_the_security_keys(tmp_path: Path) -> None:
    config = tmp_path / "baton.json"
    config.write_text(json.dumps({"BatonNatsUser": "u", "BatonNatsPassword": NATS_PASSWORD}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    proc = subprocess.run(
        _baton("up", "--config", str(config), "--state-dir", str(tmp_path / "state")),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "BatonNatsUser: set, but `baton up` without --nats" in proc.stderr
    assert NATS_PASSWORD not in proc.stderr + proc.stdout
