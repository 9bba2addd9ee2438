"""What candidate choice takes in (`CandidateRules`) and gives back (`Plan`).

Both are frozen pydantic models so a plan can be stored in the recovery audit and published as-is: the
operator reads *why* each replica was passed over or lost from the same object the executor acted on.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.models import InstanceKey, PromotionRule
from libs.topology.errant import ErrantGtid

# BatonPromoteReplicasWithErrantGTID: may a replica with errant GTIDs be promoted (or serve as the
# two-step intermediate, whose binary logs would hand them to the successor)?
ErrantPromotion = Literal["always", "last-resort", "never"]


class RegisteredRule(BaseModel):
    """A promotion rule registered at run time (`baton_candidates`), valid until `expires_at`."""

    model_config = ConfigDict(frozen=True)

    rule: PromotionRule
    expires_at: datetime


class CandidateRules(BaseModel):
    """The policy candidate choice applies (orchestrator's option names, snake_cased).

    `registered` rules override what `DetectPromotionRuleQuery` reported for the instance, but only
    until they expire: a stale registration must not pin or ban a server forever.
    """

    model_config = ConfigDict(frozen=True)

    registered: dict[InstanceKey, RegisteredRule] = Field(default_factory=dict)
    prevent_cross_data_center_master_failover: bool = False
    prevent_cross_region_master_failover: bool = False
    fail_master_promotion_on_lag_minutes: float = Field(default=0, ge=0)  # 0: off
    fail_master_promotion_if_sql_thread_not_up_to_date: bool = False
    delay_master_promotion_if_sql_thread_not_up_to_date: bool = False
    stale_after: timedelta = timedelta(seconds=15)  # older latest probes are not trusted
    promotion_ignore_hostname_filters: tuple[str, ...] = ()  # regexes: matching hosts are never promoted
    promote_errant: ErrantPromotion = "last-resort"  # BatonPromoteReplicasWithErrantGTID
    verify_replication_filters: bool = False  # VerifyReplicationFilters: see candidate.can_replicate_from
    postpone_replica_recovery_on_lag_minutes: float = Field(default=0, ge=0)  # 0: off; see Plan.postponed

    @field_validator("registered", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        # JSON object keys are `host:port` strings (that is how the dict serialises): parse them back.
        if isinstance(value, dict):
            return {InstanceKey.parse(k) if isinstance(k, str) else k: v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CandidateRules:
        for pattern in self.promotion_ignore_hostname_filters:
            try:  # a bad pattern is a config error now, not a crash mid-failover
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad PromotionIgnoreHostnameFilters pattern {pattern!r}: {exc}") from exc
        # orchestrator refuses this combination too: "fail" and "wait" cannot both be the answer.
        if (
            self.fail_master_promotion_if_sql_thread_not_up_to_date
            and self.delay_master_promotion_if_sql_thread_not_up_to_date
        ):
            raise ValueError(
                "FailMasterPromotionIfSQLThreadNotUpToDate and DelayMasterPromotionIfSQLThreadNotUpToDate "
                "are mutually exclusive"
            )
        return self


class DrainState(StrEnum):
    """Where the recovery stands with the relay logs when candidates are ranked.

    Either way replicas are ranked by what they hold (applied + received): the state says what a replica
    that has not applied everything it received means. `pending`: the IO threads still run or were just
    stopped, the SQL threads are applying; the executor waits for the data holder before promoting.
    `done`: the IO threads were stopped and the SQL threads given their time; what is still unapplied
    could not drain in time, and the plan says so.
    """

    PENDING = "pending"
    DONE = "done"


class ReplicaReason(BaseModel):
    """One replica and a sentence about it, for the audit."""

    model_config = ConfigDict(frozen=True)

    key: InstanceKey
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


class Plan(BaseModel):
    """How to replace a failed master, or why it cannot be done.

    Invariant: `ok` iff `successor` is set. With `intermediate` set the promotion has two steps: the
    intermediate (the most up-to-date replica, which is not fit to stay master) serves its binary logs
    until the successor has caught up with it, then the intermediate and `replicas_to_repoint` replicate
    from the successor. The intermediate is never made writable. `replicas_to_repoint` are the failed
    master's direct replicas that end under the successor (the intermediate included when it can follow
    it); `lost` are those that cannot; every replica that is not the successor is in `passed_over`.

    For the audit: `drain` is the relay-log state the ranking was made in, `undrained` the replicas
    ranked by what they received but had not applied, `errant` every replica's errant GTIDs (chosen or
    not), `tried` the candidates that already failed in this recovery (see `fallback_plan`).
    """

    model_config = ConfigDict(frozen=True)

    failed_master: InstanceKey
    cluster: str
    ok: bool
    reason: str = ""
    intermediate: InstanceKey | None = None
    successor: InstanceKey | None = None
    replicas_to_repoint: tuple[InstanceKey, ...] = ()
    lost: tuple[ReplicaReason, ...] = ()
    passed_over: tuple[ReplicaReason, ...] = ()
    wait_for_relay_log_apply: bool = False
    drain: DrainState = DrainState.PENDING
    undrained: tuple[ReplicaReason, ...] = ()
    errant: tuple[ErrantGtid, ...] = ()
    tried: tuple[ReplicaReason, ...] = ()
    # Replicas of `replicas_to_repoint` moved only once the successor is promoted (their SQL_Delay is
    # above PostponeReplicaRecoveryOnLagMinutes: orchestrator's postponed relocation), straight under it.
    postponed: tuple[InstanceKey, ...] = ()
    # The failed master had the master side of semi-sync on: the promotion switches it on on the successor
    # before it takes writes (the topology keeps its semi-sync; `failover.master_plan`).
    semi_sync_master: bool = False
    # Replicas of `replicas_to_repoint` whose replica side of semi-sync is switched on as they are
    # repointed, so the successor has as many semi-sync replicas as the failed master waited for (the
    # successor may have been the only one): `semisync.successor_semi_sync_replicas`.
    semi_sync_replicas: tuple[InstanceKey, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if self.ok != (self.successor is not None):
            raise ValueError("a plan is ok exactly when it names a successor")
        if self.intermediate is not None and self.intermediate == self.successor:
            raise ValueError("the intermediate and the successor must differ")
        return self

    @property
    def two_step(self) -> bool:
        return self.intermediate is not None

    def lost_reason(self, key: InstanceKey) -> str | None:
        return next((r.reason for r in self.lost if r.key == key), None)

    def passed_over_reason(self, key: InstanceKey) -> str | None:
        return next((r.reason for r in self.passed_over if r.key == key), None)

    def errant_of(self, key: InstanceKey) -> str:
        return next((e.gtids for e in self.errant if e.replica == key), "")

    def summary(self) -> str:
        """One sentence: the log line, the audit headline, and what tests assert on."""
        if not self.ok or self.successor is None:
            return f"cannot replace failed master {self.failed_master} of {self.cluster}: {self.reason}"
        if self.intermediate is not None:
            head = (
                f"replace failed master {self.failed_master} of {self.cluster} in two steps: "
                f"{self.intermediate} (most up to date) serves {self.successor} until it catches up, "
                f"then {self.successor} is promoted"
            )
        else:
            head = f"promote {self.successor} to replace failed master {self.failed_master} of {self.cluster}"
        n = len(self.replicas_to_repoint)
        parts = [head, f"repoint {n} replica{'' if n == 1 else 's'}"]
        if self.lost:
            parts.append("lose " + ", ".join(str(r.key) for r in self.lost))
        if self.wait_for_relay_log_apply:
            parts.append("wait for the relay log to be applied first")
        for key in (self.intermediate, self.successor):
            if key is not None and self.errant_of(key):
                parts.append(f"{key} carries errant GTIDs {self.errant_of(key)}")
        if self.drain is DrainState.DONE and self.undrained:
            keys = ", ".join(str(r.key) for r in self.undrained)
            what = "it" if len(self.undrained) == 1 else "each"
            parts.append(f"relay log not applied in time on {keys}: ranked by what {what} received")
        if self.tried:
            parts.append("after " + ", ".join(str(r.key) for r in self.tried) + " failed")
        return "; ".join(parts)
