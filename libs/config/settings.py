"""`Settings`: every configuration key Baton reads, by orchestrator's name, with its default.

Field names ARE the JSON keys (PascalCase, orchestrator's spelling), so an existing orchestrator config
file loads unchanged and the docs, the file and the code use one vocabulary. Orchestrator's keys live in
`topology.py` and `recovery.py`, Baton's own (`Baton...`) in `baton.py`. Load with
`libs.config.load_settings`, which adds the file/env layering and one-line errors; `Settings()` alone
gives the defaults.

Secrets (passwords, tokens, URLs that may hold a password) are `SecretStr`: `repr`, `str`, and
`redacted_dict()` show `**********`; only `.get_secret_value()` reveals them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr, model_validator

from libs.config.baton import AuthToken, BatonKeys, ConsulDataCenter
from libs.config.recovery import RecoveryKeys
from libs.config.topology import TopologyKeys

DEFAULT_DATA_CENTER = "default"


class Settings(BatonKeys, RecoveryKeys, TopologyKeys):
    """The whole configuration of one Baton process. Frozen; build a new one to change it.

    (Bases are listed in reverse so that fields come out orchestrator keys first, Baton keys last.)
    """

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.FailMasterPromotionIfSQLThreadNotUpToDate and self.DelayMasterPromotionIfSQLThreadNotUpToDate:
            raise ValueError(
                "FailMasterPromotionIfSQLThreadNotUpToDate and DelayMasterPromotionIfSQLThreadNotUpToDate "
                "cannot both be true"
            )
        if self.FailMasterPromotionOnLagMinutes > 0 and not self.ReplicationLagQuery:
            raise ValueError("FailMasterPromotionOnLagMinutes > 0 needs ReplicationLagQuery to be set")
        if self.BackendDB in ("sqlite", "sqlite3") and not self.SQLite3DataFile:
            raise ValueError(f"BackendDB {self.BackendDB!r} needs SQLite3DataFile to be set")
        if self.AuthenticationMethod in ("basic", "multi") and not self.HTTPAuthUser:
            raise ValueError(
                f"AuthenticationMethod {self.AuthenticationMethod!r} needs HTTPAuthUser to be set"
            )
        if self.AuthenticationMethod == "token" and not self.BatonAuthTokens:
            raise ValueError("AuthenticationMethod 'token' needs at least one entry in BatonAuthTokens")
        return self

    # ---- derived values: one place decides them, so services agree -------------------------------

    @property
    def kv_master_prefix(self) -> str:
        """KVClusterMasterPrefix normalised as orchestrator does: `mysql/master` -> `mysql/master/`."""
        if self.KVClusterMasterPrefix == "/":
            return "/"
        return self.KVClusterMasterPrefix.rstrip("/") + "/"

    @property
    def locked_semi_sync_master_seconds(self) -> int:
        """ReasonableLockedSemiSyncMasterSeconds, falling back to ReasonableReplicationLagSeconds when 0."""
        return self.ReasonableLockedSemiSyncMasterSeconds or self.ReasonableReplicationLagSeconds

    @property
    def node_data_center(self) -> str:
        """This process's data center: BatonDataCenter, or `default`."""
        return self.BatonDataCenter or DEFAULT_DATA_CENTER

    def consul_data_centers(self) -> dict[str, ConsulDataCenter]:
        """Consul agent per data center: BatonConsulDataCenters, else the single ConsulAddress (if any)
        under this node's data center name, else nothing (no Consul publishing)."""
        if self.BatonConsulDataCenters:
            return dict(self.BatonConsulDataCenters)
        if self.ConsulAddress:
            single = ConsulDataCenter(
                Address=self.ConsulAddress, AclToken=self.ConsulAclToken, Scheme=self.ConsulScheme
            )
            return {self.BatonDataCenter or DEFAULT_DATA_CENTER: single}
        return {}

    def read_model_url(self) -> SecretStr:
        """SQLAlchemy async URL of the API's read model (secret: it may hold a password).

        BatonReadModelURL if set; else SQLite3DataFile when BackendDB is sqlite/sqlite3; else MySQL on
        MySQLOrchestratorHost when set; else SQLite at `<BatonStateDir>/baton.db`.
        """
        if self.BatonReadModelURL.get_secret_value():
            return self.BatonReadModelURL
        if self.BackendDB in ("sqlite", "sqlite3"):
            return SecretStr(f"sqlite+aiosqlite:///{self.SQLite3DataFile}")
        if self.MySQLOrchestratorHost:
            user = quote(self.MySQLOrchestratorUser, safe="")
            password = quote(self.MySQLOrchestratorPassword.get_secret_value(), safe="")
            auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
            return SecretStr(
                f"mysql+asyncmy://{auth}{self.MySQLOrchestratorHost}:{self.MySQLOrchestratorPort}"
                f"/{self.MySQLOrchestratorDatabase}?charset=utf8mb4"
            )
        return SecretStr(f"sqlite+aiosqlite:///{self.BatonStateDir.rstrip('/')}/baton.db")

    def hook_commands(self, kind: str) -> list[str]:
        """The commands configured for a hook kind, by its key name (e.g. `PreFailoverProcesses`)."""
        if not kind.endswith("Processes") or kind not in type(self).model_fields:
            raise KeyError(f"unknown hook kind {kind!r}")
        commands: list[str] = getattr(self, kind)
        return list(commands)

    def admin_tokens(self) -> list[AuthToken]:
        """The tokens whose role is admin."""
        return [token for token in self.BatonAuthTokens if token.Role == "admin"]

    def secret_values(self) -> set[str]:
        """Every non-empty secret of this config (top level and nested: tokens, Consul ACLs)."""
        found: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, SecretStr):
                if value.get_secret_value():
                    found.add(value.get_secret_value())
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)

        walk(self)
        return found

    def environment_without_secrets(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` minus every variable whose value holds one of this config's secrets (a password given
        as `${VAR}` lives in VAR): what child processes such as hooks may inherit."""
        secrets = self.secret_values()
        return {name: value for name, value in env.items() if not any(s in value for s in secrets)}

    def redacted_dict(self) -> dict[str, Any]:
        """Every key and its value, JSON-ready, with each non-empty secret shown as `**********`.

        Safe to log, print or serve (e.g. `baton config show`): no secret can appear in it.
        """
        return self.model_dump(mode="json")
