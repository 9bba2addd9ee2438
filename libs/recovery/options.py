"""From `Settings` (orchestrator's keys) to what the recovery needs: candidate rules, execution
options, hook runner, credentials. One place decides the mapping, so services and tests agree."""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timedelta

from pydantic import ValidationError

from libs.config import Settings
from libs.config.derive import stale_after
from libs.errors import ConfigError
from libs.hooks import HookContext, HookKind, HookResult, run_hooks
from libs.models import InstanceKey, PromotionRule
from libs.recovery.leadership import LEASE_TTL_S
from libs.recovery.steps import ExecutionOptions
from libs.topology.plan import CandidateRules, RegisteredRule

log = logging.getLogger(__name__)
UNDECODABLE_RULE_TTL = timedelta(minutes=1)  # rules are read afresh for every plan
# The longest a recovery waits to connect to (and, in the re-check, to read from) the failed master: a
# live server completes the handshake in milliseconds, a hung one (SIGSTOP, a frozen VM) never does.
FAILED_MASTER_TIMEOUT_S = 0.5


def failed_master_timeout(settings: Settings) -> float:
    """The failed master's connect/read timeout in a recovery: MySQLConnectTimeoutSeconds, at most
    FAILED_MASTER_TIMEOUT_S."""
    return min(float(settings.MySQLConnectTimeoutSeconds), FAILED_MASTER_TIMEOUT_S)


def statement_timeout(settings: Settings, lease_ttl_s: float = LEASE_TTL_S) -> float:
    """The time limit of each MySQL statement the recovery leader sends: BatonRecoveryStatementTimeoutSeconds,
    or half the lease TTL when it is 0. Refused (ConfigError) unless below the TTL."""
    configured = float(settings.BatonRecoveryStatementTimeoutSeconds)
    value = configured or lease_ttl_s / 2
    if value >= lease_ttl_s:
        raise ConfigError(
            f"BatonRecoveryStatementTimeoutSeconds: {configured:g} s is not below the recovery lease TTL "
            f"({lease_ttl_s:g} s): a statement could complete after the lease was lost"
        )
    return value


def execution_options(settings: Settings, lease_ttl_s: float = LEASE_TTL_S) -> ExecutionOptions:
    return ExecutionOptions(
        apply_promotion=settings.ApplyMySQLPromotionAfterMasterFailover,
        detach_master_host=settings.MasterFailoverDetachReplicaMasterHost,
        detach_lost=settings.DetachLostReplicasAfterMasterFailover,
        lost_downtime_minutes=float(settings.MasterFailoverLostInstancesDowntimeMinutes),
        super_read_only=settings.UseSuperReadOnly,
        apply_timeout_s=float(settings.InstanceBulkOperationsWaitTimeoutSeconds) or 10.0,
        follow_timeout_s=float(settings.InstanceBulkOperationsWaitTimeoutSeconds) or 10.0,
        delay_promotion=settings.DelayMasterPromotionIfSQLThreadNotUpToDate,
        delay_stall_s=float(settings.ReasonableReplicationLagSeconds) or 10.0,
        repoint_concurrency=settings.MaxConcurrentReplicaOperations,
        takeover_wait_s=float(settings.ReasonableMaintenanceReplicationLagSeconds) or 20.0,
        statement_timeout_s=statement_timeout(settings, lease_ttl_s),
    )


def candidate_rules(
    settings: Settings, registered: dict[InstanceKey, RegisteredRule] | None = None
) -> CandidateRules:
    return CandidateRules(
        registered=registered or {},
        prevent_cross_data_center_master_failover=settings.PreventCrossDataCenterMasterFailover,
        prevent_cross_region_master_failover=settings.PreventCrossRegionMasterFailover,
        fail_master_promotion_on_lag_minutes=float(settings.FailMasterPromotionOnLagMinutes),
        fail_master_promotion_if_sql_thread_not_up_to_date=settings.FailMasterPromotionIfSQLThreadNotUpToDate,
        delay_master_promotion_if_sql_thread_not_up_to_date=settings.DelayMasterPromotionIfSQLThreadNotUpToDate,
        stale_after=max(stale_after(settings), timedelta(seconds=15)),
        promotion_ignore_hostname_filters=tuple(settings.PromotionIgnoreHostnameFilters),
        promote_errant=settings.BatonPromoteReplicasWithErrantGTID,
        verify_replication_filters=settings.VerifyReplicationFilters,
        postpone_replica_recovery_on_lag_minutes=float(settings.PostponeReplicaRecoveryOnLagMinutes),
    )


def parse_registered(entries: dict[str, bytes], now: datetime) -> dict[InstanceKey, RegisteredRule]:
    """`baton_candidates` entries (key `kv_key(host:port)`, value a RegisteredRule as JSON:
    `{"rule": "prefer", "expires_at": ISO-8601}`) → unexpired rules. Fails closed: an instance whose
    value cannot be decoded is `must_not` (its rule may have been one); a key that names no instance is
    ignored. Both are logged as errors with the key."""
    from libs.bus.subjects import kv_key_decode

    out: dict[InstanceKey, RegisteredRule] = {}
    for key, value in entries.items():
        try:
            instance = InstanceKey.parse(kv_key_decode(key))
        except ValueError as exc:
            log.error("baton_candidates/%s: the key names no instance, entry ignored: %s", key, exc)
            continue
        try:
            rule = RegisteredRule.model_validate_json(value)
        except ValidationError as exc:
            log.error("baton_candidates/%s: undecodable rule, %s counts as must_not: %s", key, instance, exc)
            rule = RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=now + UNDECODABLE_RULE_TTL)
        if rule.expires_at > now:
            out[instance] = rule
    return out


class SettingsHooks:
    """Runs the hook lists configured in `settings` (libs.hooks semantics)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, kind: HookKind, context: HookContext) -> list[HookResult]:
        commands = self.settings.hook_commands(kind.value)
        if not commands:
            return []
        return await run_hooks(
            kind,
            commands,
            context,
            self.settings.BatonHookTimeoutSeconds,
            shell=self.settings.ProcessesShellCommand,
            base_env=self.settings.environment_without_secrets(os.environ),
        )


def hostname_ignored(settings: Settings, host: str) -> bool:
    """RecoveryIgnoreHostnameFilters (the gate is `policy.py`'s `ignored_host`)."""
    return any(re.search(p, host) for p in settings.RecoveryIgnoreHostnameFilters)
