"""What a hook is told about a failure or recovery: orchestrator's placeholders and `ORC_*` variables.

One `HookContext` carries the values; `PLACEHOLDERS` maps each of orchestrator's `{placeholder}` names
to the `ORC_*` environment variable that carries the same value, and `environment()` produces those
variables. Names and value formats are orchestrator's (booleans `true`/`false`, lists `host:port`
joined by commas), so existing hook scripts work unchanged.

Differences from orchestrator, on purpose:
- `{countLostReplicas}` and `{successorBinlogCoordinates}` also get variables
  (`ORC_COUNT_LOST_REPLICAS`, `ORC_SUCCESSOR_BINLOG_COORDINATES`); orchestrator has the first only as a
  placeholder.
- Without a successor, orchestrator leaves `{successorHost}` etc. in the command as literal text;
  Baton replaces them with the empty string. The `ORC_SUCCESSOR_*` variables are, as in orchestrator,
  only set when there is a successor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict


class HookContext(BaseModel):
    """The facts of one detection or recovery, as hooks see them. No secrets belong here."""

    model_config = ConfigDict(frozen=True)

    failure_type: str = ""
    """Analysis code, e.g. `DeadMaster`."""
    instance_type: str = ""
    """`master`, `co-master`, `intermediate-master` or `group-member`."""
    is_master: bool = False
    is_co_master: bool = False
    failure_description: str = ""
    command: str = ""
    """Command hint: `force-master-failover`, `force-master-takeover`, `graceful-master-takeover` or empty."""
    failed_host: str = ""
    failed_port: int = 0
    failure_cluster: str = ""
    failure_cluster_alias: str = ""
    failure_cluster_domain: str = ""
    count_replicas: int = 0
    is_downtimed: bool = False
    auto_master_recovery: bool = False
    """The cluster matched RecoverMasterClusterFilters."""
    auto_intermediate_master_recovery: bool = False
    """The cluster matched RecoverIntermediateMasterClusterFilters."""
    orchestrator_host: str = ""
    """The Baton node acting (BatonNodeName)."""
    recovery_uid: str = ""
    successor_host: str | None = None
    """The promoted server; None when the recovery found no successor (or has not run yet)."""
    successor_port: int | None = None
    successor_alias: str = ""
    successor_binlog_coordinates: str = ""
    """`file:pos` of the successor, if known."""
    lost_replicas: tuple[str, ...] = ()
    """Replicas lost in the recovery, as `host:port`."""
    replica_hosts: tuple[str, ...] = ()
    """The failed instance's replicas, as `host:port`."""

    @property
    def is_successful(self) -> bool:
        """orchestrator's `{isSuccessful}`: a successor exists."""
        return self.successor_host is not None


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _successor_port(ctx: HookContext) -> str:
    return "" if ctx.successor_port is None else str(ctx.successor_port)


class Placeholder(NamedTuple):
    env: str
    """The `ORC_*` variable carrying the value."""
    value: Callable[[HookContext], str]
    successor_only: bool = False
    """The variable is only set when there is a successor (orchestrator's rule)."""


PLACEHOLDERS: dict[str, Placeholder] = {
    "failureType": Placeholder("ORC_FAILURE_TYPE", lambda c: c.failure_type),
    "instanceType": Placeholder("ORC_INSTANCE_TYPE", lambda c: c.instance_type),
    "isMaster": Placeholder("ORC_IS_MASTER", lambda c: _bool(c.is_master)),
    "isCoMaster": Placeholder("ORC_IS_CO_MASTER", lambda c: _bool(c.is_co_master)),
    "failureDescription": Placeholder("ORC_FAILURE_DESCRIPTION", lambda c: c.failure_description),
    "command": Placeholder("ORC_COMMAND", lambda c: c.command),
    "failedHost": Placeholder("ORC_FAILED_HOST", lambda c: c.failed_host),
    "failedPort": Placeholder("ORC_FAILED_PORT", lambda c: str(c.failed_port)),
    "failureCluster": Placeholder("ORC_FAILURE_CLUSTER", lambda c: c.failure_cluster),
    "failureClusterAlias": Placeholder("ORC_FAILURE_CLUSTER_ALIAS", lambda c: c.failure_cluster_alias),
    "failureClusterDomain": Placeholder("ORC_FAILURE_CLUSTER_DOMAIN", lambda c: c.failure_cluster_domain),
    "countReplicas": Placeholder("ORC_COUNT_REPLICAS", lambda c: str(c.count_replicas)),
    "countSlaves": Placeholder("ORC_COUNT_REPLICAS", lambda c: str(c.count_replicas)),
    "isDowntimed": Placeholder("ORC_IS_DOWNTIMED", lambda c: _bool(c.is_downtimed)),
    "autoMasterRecovery": Placeholder("ORC_AUTO_MASTER_RECOVERY", lambda c: _bool(c.auto_master_recovery)),
    "autoIntermediateMasterRecovery": Placeholder(
        "ORC_AUTO_INTERMEDIATE_MASTER_RECOVERY", lambda c: _bool(c.auto_intermediate_master_recovery)
    ),
    "orchestratorHost": Placeholder("ORC_ORCHESTRATOR_HOST", lambda c: c.orchestrator_host),
    "recoveryUID": Placeholder("ORC_RECOVERY_UID", lambda c: c.recovery_uid),
    "isSuccessful": Placeholder("ORC_IS_SUCCESSFUL", lambda c: _bool(c.is_successful)),
    "successorHost": Placeholder("ORC_SUCCESSOR_HOST", lambda c: c.successor_host or "", True),
    "successorPort": Placeholder("ORC_SUCCESSOR_PORT", _successor_port, True),
    "successorAlias": Placeholder("ORC_SUCCESSOR_ALIAS", lambda c: c.successor_alias, True),
    "successorBinlogCoordinates": Placeholder(
        "ORC_SUCCESSOR_BINLOG_COORDINATES", lambda c: c.successor_binlog_coordinates, True
    ),
    "lostReplicas": Placeholder("ORC_LOST_REPLICAS", lambda c: ",".join(c.lost_replicas)),
    "lostSlaves": Placeholder("ORC_LOST_REPLICAS", lambda c: ",".join(c.lost_replicas)),
    "countLostReplicas": Placeholder("ORC_COUNT_LOST_REPLICAS", lambda c: str(len(c.lost_replicas))),
    "replicaHosts": Placeholder("ORC_REPLICA_HOSTS", lambda c: ",".join(c.replica_hosts)),
    "slaveHosts": Placeholder("ORC_REPLICA_HOSTS", lambda c: ",".join(c.replica_hosts)),
}
"""orchestrator placeholder name (without braces) -> its variable and value."""


def environment(ctx: HookContext) -> dict[str, str]:
    """The `ORC_*` variables for `ctx` (successor ones only when there is a successor)."""
    env: dict[str, str] = {}
    for placeholder in PLACEHOLDERS.values():
        if placeholder.successor_only and not ctx.is_successful:
            continue
        env[placeholder.env] = placeholder.value(ctx)
    return env


def placeholder_values(ctx: HookContext) -> dict[str, str]:
    """Placeholder name -> value, as orchestrator would paste it (for showing a command to a person)."""
    return {name: placeholder.value(ctx) for name, placeholder in PLACEHOLDERS.items()}
