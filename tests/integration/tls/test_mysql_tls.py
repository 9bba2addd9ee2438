"""MySQL TLS (issue 17 item 2): topology connections use orchestrator's MySQLTopologySSL* keys.

A real mariadbd runs with `ssl_ca/ssl_cert/ssl_key` and `require_secure_transport=ON`; the topology user
is `REQUIRE X509`. Certificates are made by the test (tests/fixtures/certs.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from libs.config import ConfigError, Settings, derive
from libs.config.derive import probe_settings, read_model_tls, topology_credentials
from libs.models import InstanceKey
from libs.mysql.connection import ConnectionPool, Credentials, MySQLConnection
from libs.mysql.fenced import FencedSession, action_pool
from libs.mysql.probe import probe
from libs.sandbox import Sandbox
from libs.sandbox.spec import NodeOptions, NodeSpec, TopologySpec
from libs.store.engine import StoreError, open_store
from tests.fixtures.certs import Pki, make_pki
from tests.fixtures.sandbox import SandboxFactory

X509_USER = "baton_x509"
X509_PASSWORD = "x509-Pw-7f3a9c"  # a throwaway test user


def tls_spec(pki: Pki) -> TopologySpec:
    """One mariadbd that serves TLS with `pki`'s server certificate and refuses plaintext TCP."""
    args = (
        f"--ssl-ca={pki.ca_cert}",
        f"--ssl-cert={pki.server_cert}",
        f"--ssl-key={pki.server_key}",
        "--require-secure-transport=ON",
    )
    return TopologySpec(nodes=(NodeSpec(name="master", options=NodeOptions(extra_args=args)),))


async def add_x509_user(sandbox: Sandbox) -> None:
    """The topology user, with the sandbox's grants, required to present a certificate of the CA."""
    rows = await sandbox.sql("master", f"SHOW GRANTS FOR '{sandbox.topology_creds.user}'@'%'")
    grant = next(iter(rows[0].values())).split(" TO ")[0]
    await sandbox.script(
        "master",
        [
            "SET sql_log_bin=0",
            f"CREATE USER '{X509_USER}'@'%' IDENTIFIED BY '{X509_PASSWORD}' REQUIRE X509",
            f"{grant} TO '{X509_USER}'@'%'",
        ],
    )


@pytest.fixture
async def tls_sandbox(sandbox_factory: SandboxFactory, pki: Pki) -> AsyncIterator[Sandbox]:
    sandbox = await sandbox_factory(tls_spec(pki))
    await add_x509_user(sandbox)
    yield sandbox


def settings_for(**keys: Any) -> Settings:
    return Settings(MySQLTopologyUser=X509_USER, MySQLTopologyPassword=SecretStr(X509_PASSWORD), **keys)


def mutual(pki: Pki, ca: Path | None = None, **more: Any) -> dict[str, Any]:
    return {
        "MySQLTopologyUseMutualTLS": True,
        "MySQLTopologySSLCAFile": str(ca or pki.ca_cert),
        "MySQLTopologySSLCertFile": str(pki.client_cert),
        "MySQLTopologySSLPrivateKeyFile": str(pki.client_key),
        **more,
    }


async def session_cipher(key: InstanceKey, creds: Credentials) -> str:
    pool = ConnectionPool()
    try:

        async def cipher(conn: MySQLConnection) -> str:
            rows = await conn.fetch("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            return str(rows[0]["Value"])

        return await pool.run(key, creds, cipher)
    finally:
        pool.close()


async def test_probe_works_over_tls_with_the_topology_keys(tls_sandbox: Sandbox, pki: Pki) -> None:
    settings = settings_for(**mutual(pki))
    key = tls_sandbox.key("master")
    snap = await probe(key, topology_credentials(settings), probe_settings(settings), pool=ConnectionPool())
    assert snap.reachable, snap.error
    assert snap.server_id is not None
    assert await session_cipher(key, topology_credentials(settings)) != ""  # the session is encrypted


async def test_plaintext_is_refused_and_tls_without_a_client_cert_serves_a_plain_user(
    tls_sandbox: Sandbox, pki: Pki
) -> None:
    """The sandbox's own topology user has no REQUIRE X509: plaintext is refused by the server
    (require_secure_transport; MariaDB answers 1045), the same user over TLS with just the CA (no client
    certificate) gets in."""
    rows = await tls_sandbox.sql("master", "SELECT @@require_secure_transport AS v")
    assert rows[0]["v"] == 1
    creds = tls_sandbox.topology_creds
    plain = Settings(MySQLTopologyUser=creds.user, MySQLTopologyPassword=creds.password)
    snap = await probe(tls_sandbox.key("master"), topology_credentials(plain), pool=ConnectionPool())
    assert not snap.reachable
    assert snap.error_code == 1045, snap.error

    ca_only = plain.model_copy(
        update={"MySQLTopologyUseMutualTLS": True, "MySQLTopologySSLCAFile": str(pki.ca_cert)}
    )
    snap = await probe(tls_sandbox.key("master"), topology_credentials(ca_only), pool=ConnectionPool())
    assert snap.reachable, snap.error


async def test_without_a_client_certificate_the_x509_user_is_denied(tls_sandbox: Sandbox, pki: Pki) -> None:
    settings = settings_for(MySQLTopologyUseMutualTLS=True, MySQLTopologySSLCAFile=str(pki.ca_cert))
    snap = await probe(tls_sandbox.key("master"), topology_credentials(settings), pool=ConnectionPool())
    assert not snap.reachable
    assert snap.error_code == 1045, snap.error  # Access denied: REQUIRE X509 without a certificate
    assert X509_PASSWORD not in (snap.error or "")


async def test_ca_mismatch_fails_and_skip_verify_accepts_it(
    tls_sandbox: Sandbox, pki: Pki, other_pki: Pki
) -> None:
    key = tls_sandbox.key("master")
    wrong_ca = settings_for(**mutual(pki, ca=other_pki.ca_cert))
    snap = await probe(key, topology_credentials(wrong_ca), pool=ConnectionPool())
    assert not snap.reachable
    assert snap.error is not None and "certificate verify failed" in snap.error.lower(), snap.error

    skipped = settings_for(**mutual(pki, ca=other_pki.ca_cert, MySQLTopologySSLSkipVerify=True))
    snap = await probe(key, topology_credentials(skipped), pool=ConnectionPool())
    assert snap.reachable, snap.error
    assert await session_cipher(key, topology_credentials(skipped)) != ""


async def test_hostname_is_verified(sandbox_factory: SandboxFactory, pki: Pki, tmp_path: Path) -> None:
    """A server whose certificate (from the right CA) names another host fails verification;
    MySQLTopologySSLSkipVerify accepts it (orchestrator: InsecureSkipVerify skips both checks)."""
    elsewhere = make_pki(tmp_path / "elsewhere", "elsewhere", server_names="DNS:db.elsewhere.example")
    spec = tls_spec(
        Pki(**{**vars(pki), "server_cert": elsewhere.server_cert, "server_key": elsewhere.server_key})
    )
    sandbox = await sandbox_factory(spec)
    await add_x509_user(sandbox)
    ca_both = tmp_path / "both-cas.pem"
    ca_both.write_text(pki.ca_cert.read_text() + elsewhere.ca_cert.read_text())
    checked = settings_for(**mutual(pki, ca=ca_both))
    snap = await probe(sandbox.key("master"), topology_credentials(checked), pool=ConnectionPool())
    assert not snap.reachable
    assert "certificate verify failed" in (snap.error or "").lower(), snap.error
    assert "127.0.0.1" in (snap.error or ""), snap.error  # IP address mismatch

    skipped = settings_for(**mutual(pki, ca=ca_both, MySQLTopologySSLSkipVerify=True))
    snap = await probe(sandbox.key("master"), topology_credentials(skipped), pool=ConnectionPool())
    assert snap.reachable, snap.error


def test_missing_ca_file_is_a_config_error_naming_the_key(tmp_path: Path, pki: Pki) -> None:
    settings = settings_for(**mutual(pki, ca=tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match=r"^MySQLTopologySSLCAFile: .*nope\.pem"):
        topology_credentials(settings)


def test_half_a_client_pair_is_a_config_error(pki: Pki) -> None:
    settings = settings_for(MySQLTopologyUseMutualTLS=True, MySQLTopologySSLCertFile=str(pki.client_cert))
    with pytest.raises(ConfigError, match=r"^MySQLTopologySSLPrivateKeyFile: "):
        topology_credentials(settings)


def test_tls_off_means_no_tls_even_with_files(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """orchestrator's rule: the files take effect only with MySQLTopologyUseMutualTLS (Baton warns once)."""
    keys = mutual(pki)
    keys["MySQLTopologyUseMutualTLS"] = False
    derive._WARNED_TLS_OFF.clear()
    with caplog.at_level(logging.WARNING, logger="libs.config.derive"):
        assert topology_credentials(settings_for(**keys)).tls is None
        assert topology_credentials(settings_for(**keys)).tls is None
    warnings = [r.getMessage() for r in caplog.records if "UseMutualTLS is false" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(
        "MySQLTopologySSL* files are set but MySQLTopologyUseMutualTLS is false"
    )
    assert topology_credentials(settings_for(**mutual(pki))).tls is not None


async def test_mysql_read_model_uses_tls_with_the_orchestrator_keys(tls_sandbox: Sandbox, pki: Pki) -> None:
    """The API's read model on MySQL (BackendDB mysql) connects with MySQLOrchestratorSSL* TLS."""
    await tls_sandbox.script(
        "master",
        ["SET sql_log_bin=0", "CREATE DATABASE baton_rm", f"GRANT ALL ON baton_rm.* TO '{X509_USER}'@'%'"],
    )
    port = tls_sandbox.key("master").port
    base = Settings(
        MySQLOrchestratorHost="127.0.0.1",
        MySQLOrchestratorPort=port,
        MySQLOrchestratorDatabase="baton_rm",
        MySQLOrchestratorUser=X509_USER,
        MySQLOrchestratorPassword=SecretStr(X509_PASSWORD),
    )
    url = base.read_model_url().get_secret_value()
    with pytest.raises(StoreError) as plain:
        await open_store(url)  # MySQLOrchestratorUseMutualTLS false: plaintext, refused
    assert X509_PASSWORD not in str(plain.value)

    settings = base.model_copy(
        update={
            "MySQLOrchestratorUseMutualTLS": True,
            "MySQLOrchestratorSSLCAFile": str(pki.ca_cert),
            "MySQLOrchestratorSSLCertFile": str(pki.client_cert),
            "MySQLOrchestratorSSLPrivateKeyFile": str(pki.client_key),
        }
    )
    tls = read_model_tls(settings)
    assert tls is not None
    store = await open_store(url, tls=tls.context())
    try:
        async with store.engine.connect() as conn:
            row = (await conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one()
        cipher = row._mapping["Value"]
        assert cipher
        tables = await tls_sandbox.sql("master", "SHOW TABLES FROM baton_rm")
        assert tables  # the schema was created over TLS
    finally:
        await store.close()


def test_read_model_missing_key_file_names_the_key(pki: Pki, tmp_path: Path) -> None:
    settings = Settings(
        MySQLOrchestratorUseMutualTLS=True,
        MySQLOrchestratorSSLCertFile=str(pki.client_cert),
        MySQLOrchestratorSSLPrivateKeyFile=str(tmp_path / "missing-key.pem"),
    )
    with pytest.raises(
        ConfigError, match=r"^MySQLOrchestratorSSLCertFile/MySQLOrchestratorSSLPrivateKeyFile: "
    ):
        read_model_tls(settings)


async def test_baton_probe_cli_reads_the_tls_keys_from_the_environment(
    tls_sandbox: Sandbox, pki: Pki
) -> None:
    """`baton probe` (the CLI's own connection path) with the keys as BATON_<Key> variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    keys = {**mutual(pki), "MySQLTopologyUser": X509_USER, "MySQLTopologyPassword": X509_PASSWORD}
    env |= {
        f"BATON_{key}": str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in keys.items()
    }
    argv = [sys.executable, "-m", "libs.cli", "probe", str(tls_sandbox.key("master"))]
    proc = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    env["BATON_MySQLTopologyUseMutualTLS"] = "false"
    proc = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "1045" in proc.stderr, proc.stderr  # plaintext: refused
    assert X509_PASSWORD not in proc.stderr + proc.stdout


class _AlwaysLeader:
    def check(self) -> None:
        """The recovery's fence, always allowing (this test is about the transport)."""


async def test_recovery_action_session_writes_over_tls(tls_sandbox: Sandbox, pki: Pki) -> None:
    """The recovery's action path (an action pool and a FencedSession, as services/recovery/wiring.py
    builds them from topology_credentials) connects with TLS and a client certificate and writes."""
    creds = topology_credentials(settings_for(**mutual(pki)))
    pool = action_pool(connect_timeout=5.0, statement_timeout=1.5)
    session = FencedSession(pool, tls_sandbox.key("master"), creds, _AlwaysLeader(), timeout=1.5)
    try:
        await session.write("SET GLOBAL read_only = 1", what="set read_only")
        assert await session.scalar("SELECT @@global.read_only") == 1
        rows = await session.read("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert rows[0]["Value"]
        await session.write("SET GLOBAL read_only = 0", what="unset read_only")
    finally:
        pool.close()
