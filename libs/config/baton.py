"""Baton's own keys: everything orchestrator has no name for (NATS, per-DC Consul, tokens, telemetry).

They are top-level keys like orchestrator's, PascalCase, and all start with `Baton` so they can never
collide with an orchestrator key and an operator can tell at a glance which file lines are Baton's.
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from libs.config.base import ConfigSection, Seconds


class ConsulDataCenter(ConfigSection):
    """One data center's Consul agent, as written in `BatonConsulDataCenters`."""

    model_config = ConfigSection.model_config | {"extra": "forbid"}

    Address: str = Field(min_length=1)
    """Consul HTTP API, `host:port`."""
    AclToken: SecretStr = SecretStr("")
    """ACL token with write access to the master keys (`${VAR}` allowed)."""
    Scheme: Literal["http", "https"] = "http"
    """http or https."""


class AuthToken(ConfigSection):
    """One API bearer token (`AuthenticationMethod: token`)."""

    model_config = ConfigSection.model_config | {"extra": "forbid"}

    Name: str = Field(min_length=1)
    """Who holds the token; shown in the audit, never the token itself."""
    Token: SecretStr
    """The secret (`${VAR}` allowed). At least 16 characters."""
    Role: Literal["read-only", "admin"] = "read-only"
    """read-only may only read; admin may also run mutating commands."""

    @field_validator("Token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < 16:
            raise ValueError("a token must be at least 16 characters long")
        return token


class BatonKeys(ConfigSection):
    """Keys orchestrator does not have."""

    BatonNatsURLs: list[str] = Field(default_factory=list)
    """NATS servers to connect to (`nats://host:4222`), in order of preference: the first one answering
    is used (list the node in the service's own DC first); the others are fallbacks. A server that stops
    answering PINGs is left within ~8 s. Empty: `baton up` starts an embedded one."""
    BatonNatsCAFile: str = ""
    """CA bundle (PEM) that NATS servers' certificates are verified with. Setting it (or
    BatonNatsCertFile, or a `tls://` URL) makes TLS mandatory: a server that does not offer TLS is refused
    before any credential is sent. Read by every service's NATS connection (libs/bus/connection.py)."""
    BatonNatsCertFile: str = ""
    """Client certificate (PEM) presented to NATS servers that verify clients (`tls { verify: true }`);
    needs BatonNatsKeyFile."""
    BatonNatsKeyFile: str = ""
    """Private key (PEM) of BatonNatsCertFile."""
    BatonNatsUser: str = ""
    """NATS user (with BatonNatsPassword), for a server with `authorization { users: [...] }`."""
    BatonNatsPassword: SecretStr = SecretStr("")
    """Password of BatonNatsUser (`${VAR}` allowed). Never logged."""
    BatonNatsToken: SecretStr = SecretStr("")
    """NATS authorization token (`authorization { token: ... }`; `${VAR}` allowed). Never logged."""
    BatonNatsCredsFile: str = ""
    """NATS `.creds` file (user JWT + NKey seed) for servers in operator/JWT mode."""
    BatonNatsNKeySeedFile: str = ""
    """File holding a user NKey seed (`SU...`) for servers that list the user's public NKey."""
    BatonStreamReplicas: int = Field(default=1, ge=1, le=5)
    """Replicas of every JetStream stream and KV bucket (3 in a 3-node production cluster)."""
    BatonNodeName: str = Field(default_factory=socket.gethostname, min_length=1)
    """Name of this process in events and leases (orchestrator's `{orchestratorHost}`). Default: hostname."""
    BatonDataCenter: str = ""
    """Name of the data center of the single Consul given by ConsulAddress (default `default`); with
    BatonConsulDataCenters, the names are its keys and a kvpublisher's `--dc` flags pick among them."""
    BatonConsulDataCenters: dict[str, ConsulDataCenter] = Field(default_factory=dict)
    """Consul per data center: `{"dc1": {"Address": "...", "AclToken": "...", "Scheme": "http"}}`.
    Empty: the single Consul of ConsulAddress/ConsulAclToken/ConsulScheme, if set."""
    BatonKVReconcileSeconds: Seconds = 30.0
    """How often the kvpublisher compares every cluster's Consul keys with baton_masters and repairs them."""
    BatonHookTimeoutSeconds: Seconds = 60.0
    """A hook still running after this long is killed (with its whole process group)."""
    BatonRecoveryStatementTimeoutSeconds: float = Field(default=0.0, ge=0)
    """Time limit of each MySQL statement the recovery leader sends (failover, takeover, old-master fencing,
    manual operations): the client gives up after it and, where the server can enforce it, so does the
    server (MariaDB `max_statement_time`, MySQL `MAX_EXECUTION_TIME` on SELECTs). It must be below the
    recovery lease TTL (3 s), so that no statement runs on long after the lease is lost; the service refuses
    to start otherwise. 0: half the lease TTL. Longer waits are sent in slices of at most 0.5 s."""
    BatonHeartbeatPeriodsSilent: float = Field(default=2.0, ge=0)
    """A master Baton cannot get an answer from (its probe failed or timed out) is dead once every
    reachable replica has received nothing from it, no event and no heartbeat, for more than this many
    of its heartbeat periods (`MASTER_HEARTBEAT_PERIOD`), even while their IO threads still say Yes
    (they do for up to `slave_net_timeout`, 60 s by default, in front of a hung master). A replica
    with heartbeats off keeps the IO-thread rule. Useful with short heartbeat periods (Baton sets 1 s
    when it repoints replicas). 0 turns it off; otherwise at least 2, so that one late heartbeat never
    fails a master over."""
    BatonPromoteReplicasWithErrantGTID: Literal["always", "last-resort", "never"] = "last-resort"
    """May a replica with errant GTIDs (transactions the failed master never had) replace it? Errant
    transactions never count as being ahead, whatever this says. `last-resort`: only when every clean
    choice would lose more replicas; `always`: like any other replica (holding the same data, the
    clean one still ranks first); `never`: it is neither promoted nor the two-step intermediate
    (whose binlogs would hand them to the new master), even if no other replica can be."""
    BatonAuthTokens: list[AuthToken] = Field(default_factory=list)
    """API bearer tokens and their roles."""
    BatonTelemetryExporter: Literal["none", "console", "otlp", "prometheus"] = "none"
    """Where traces and metrics go: `none`; `console` (stdout, for a developer); `otlp` (traces and
    metrics to BatonTelemetryEndpoint); `prometheus` (metrics only, scraped at `/metrics`: on the API's
    ListenAddress in a process that runs the API — `python -m services.api`, `baton up` — and on
    BatonMetricsListen in the prober, analyzer, recovery and kvpublisher)."""
    BatonTelemetryEndpoint: str = ""
    """OTLP/HTTP endpoint of the `otlp` exporter (default `http://127.0.0.1:4318`)."""
    BatonMetricsListen: str = "127.0.0.1:9464"
    """`host:port` where a service without an HTTP server of its own (prober, analyzer, recovery,
    kvpublisher) serves `/metrics` when BatonTelemetryExporter is `prometheus` (`0.0.0.0:9464` to be
    scraped from other hosts; each process on one host needs its own port, e.g. through
    `BATON_BatonMetricsListen`). The API and `baton up` serve `/metrics` on ListenAddress instead."""
    BatonStateDir: str = ".baton"
    """Local state of `baton up`: the embedded NATS store, the SQLite read model."""
    BatonReadModelURL: SecretStr = SecretStr("")
    """SQLAlchemy URL of the API's read model (`sqlite+aiosqlite:///...`, `mysql+asyncmy://...`).
    Empty: derived from BackendDB and its keys; see Settings.read_model_url()."""

    @field_validator("BatonHeartbeatPeriodsSilent")
    @classmethod
    def _enough_periods(cls, periods: float) -> float:
        if 0 < periods < 2:
            raise ValueError("must be 0 (off) or at least 2 heartbeat periods")
        return periods
