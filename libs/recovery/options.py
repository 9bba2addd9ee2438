"""From `Settings` (orchestrator's keys) to what the recovery needs: candidate rules, execution
options, hook runner, credentials. One place decides the mapping, so services and tests agree."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import ValidationError

from libs.config import Settings
from libs.config.derive import stale_after
from libs.hooks import HookContext, HookKind, HookResult, run_hooks
from libs.models import InstanceKey
from libs.recovery.steps import ExecutionOptions
from libs.topology.plan import CandidateRules, RegisteredRule


def execution_options(settings: Settings) -> ExecutionOptions:
    return ExecutionOptions(
        apply_promotion=settings.ApplyMySQLPromotionAfterMasterFailover,
        detach_lost=settings.DetachLostReplicasAfterMasterFailover,
        lost_downtime_minutes=float(settings.MasterFailoverLostInstancesDowntimeMinutes),
        super_read_only=settings.UseSuperReadOnly,
        apply_timeout_s=float(settings.InstanceBulkOperationsWaitTimeoutSeconds) or 10.0,
        delay_promotion=settings.DelayMasterPromotionIfSQLThreadNotUpToDate,
        delay_stall_s=float(settings.ReasonableReplicationLagSeconds) or 10.0,
        repoint_concurrency=settings.MaxConcurrentReplicaOperations,
        takeover_wait_s=float(settings.ReasonableMaintenanceReplicationLagSeconds) or 20.0,
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
    )


def parse_registered(entries: dict[str, bytes], now: datetime) -> dict[InstanceKey, RegisteredRule]:
    """`baton_candidates` entries (key `kv_key(host:port)`, value a RegisteredRule as JSON:
    `{"rule": "prefer", "expires_at": ISO-8601}`) → unexpired rules. Bad entries are skipped."""
    from libs.bus.subjects import kv_key_decode

    out: dict[InstanceKey, RegisteredRule] = {}
    for key, value in entries.items():
        try:
            rule = RegisteredRule.model_validate_json(value)
            instance = InstanceKey.parse(kv_key_decode(key))
        except (ValidationError, ValueError):
            continue
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
        )


def hostname_ignored(settings: Settings, host: str) -> bool:
    """RecoveryIgnoreHostnameFilters (the gate is `policy.py`'s `ignored_host`)."""
    return any(re.search(p, host) for p in settings.RecoveryIgnoreHostnameFilters)
