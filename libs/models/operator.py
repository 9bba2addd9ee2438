"""Operator commands: the request/reply contract on `baton.cmd.<service>.<verb>`, and the KV records the
API writes on an operator's behalf.

Commands that act on MySQL (recover, failovers, takeovers) or on state only the recovery leader owns
(acknowledgements, blocks) are core-NATS request/reply on `baton.cmd.recovery.<verb>`
(`libs.bus.subjects.cmd_subject("recovery", verb)`). The request is a `CommandRequest`, the reply a
`CommandReply`. Only the recovery **leader** answers (followers must not subscribe, or must stay
silent), so "no responders" means "no leader right now" and the API says so with a 503.

The recovery service answers when the command has finished (a failover replies after the new master is
writable, or after it failed), so the API's request timeout per verb is generous (`reply_timeout_s`).

Data that lives in KV is written directly by the API, one key per instance (`kv_key("host:port")`):
- `baton_downtime`: `libs.recovery.downtime.Downtime` (the recovery's format, also used for lost
  replicas); the key expires with a per-message TTL, and readers also check `ends_at`.
- `baton_candidates`: `CandidateRecord` (a superset of `libs.topology.plan.RegisteredRule`, so the
  recovery can read it as one).
- `baton_settings`, key `recoveries`: `GlobalRecoveries` (absent = enabled).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from libs.models.events import new_event_id, utcnow
from libs.models.instance import InstanceKey, PromotionRule

RECOVERY_SERVICE = "recovery"
GLOBAL_RECOVERIES_KEY = "recoveries"  # key in baton_settings
# `baton.cmd.kvpublisher.reconcile`: every kvpublisher process (no queue group) compares every DC's
# keys with baton_masters now and repairs the differences; it answers `{"node", "dcs"}` at once.
KVPUBLISHER_SERVICE = "kvpublisher"
KV_RECONCILE = "reconcile"


class RecoveryVerb(StrEnum):
    """The verbs of `baton.cmd.recovery.<verb>`: orchestrator's command names."""

    RECOVER = "recover"  # instance (+ optional destination); forced: bypasses blocks/filters/downtime
    RECOVER_LITE = "recover-lite"  # the same, hooks skipped (skip_hooks=True)
    FORCE_MASTER_FAILOVER = "force-master-failover"  # cluster; as if the master were dead
    # cluster + destination, a direct replica of the master: force-master-failover promoting it
    FORCE_MASTER_TAKEOVER = "force-master-takeover"
    GRACEFUL_MASTER_TAKEOVER = "graceful-master-takeover"  # cluster (+ destination); old master stopped
    GRACEFUL_MASTER_TAKEOVER_AUTO = "graceful-master-takeover-auto"  # ... old master replicating
    ACK_RECOVERIES = "ack-recoveries"  # scope cluster | instance | all | uid, with a comment
    BLOCKED_RECOVERIES = "blocked-recoveries"  # cluster optional: automated recoveries blocks refuse now
    # cluster optional: baton_masters holds each cluster's live master, then the kvpublishers reconcile;
    # the reply's `details` is orchestrator's `[{"Key", "Value"}]` of the submitted masters
    SUBMIT_MASTERS_TO_KV_STORES = "submit-masters-to-kv-stores"
    # instance: which of its binary logs hold its errant GTIDs (read-only; `details` = the log names)
    LOCATE_GTID_ERRANT = "locate-gtid-errant"

    @property
    def reply_timeout_s(self) -> float:
        """How long the API waits for the reply: failovers take seconds (graceful: up to the lag limit)."""
        if self in (RecoveryVerb.ACK_RECOVERIES, RecoveryVerb.BLOCKED_RECOVERIES):
            return 5.0
        if self is RecoveryVerb.SUBMIT_MASTERS_TO_KV_STORES:
            return 30.0  # a fresh probe of the clusters, the writes, the kvpublishers' answer
        if self is RecoveryVerb.LOCATE_GTID_ERRANT:
            return 30.0  # a fresh probe, then the first events of every binary log
        return 90.0


class RefactorVerb(StrEnum):
    """The mutating topology verbs of `baton.cmd.recovery.<verb>` (orchestrator-client's names), carried
    out by the recovery leader under the cluster's recovery lock (`libs/recovery/refactoring.py`).
    `instance` is the instance acted on, `destination` the target where the verb has one, `argument`
    the delay seconds (delay-replication), binary log (purge-binary-logs) or pattern (bulk moves)."""

    # replication control
    STOP_REPLICA = "stop-replica"
    STOP_REPLICA_NICE = "stop-replica-nice"
    START_REPLICA = "start-replica"
    RESTART_REPLICA = "restart-replica"
    RESET_REPLICA = "reset-replica"
    DETACH_REPLICA = "detach-replica"
    REATTACH_REPLICA = "reattach-replica"
    DETACH_REPLICA_MASTER_HOST = "detach-replica-master-host"
    REATTACH_REPLICA_MASTER_HOST = "reattach-replica-master-host"
    SKIP_QUERY = "skip-query"
    DELAY_REPLICATION = "delay-replication"
    SET_READ_ONLY = "set-read-only"
    SET_WRITEABLE = "set-writeable"
    FLUSH_BINARY_LOGS = "flush-binary-logs"
    PURGE_BINARY_LOGS = "purge-binary-logs"
    ENABLE_SEMI_SYNC_MASTER = "enable-semi-sync-master"
    DISABLE_SEMI_SYNC_MASTER = "disable-semi-sync-master"
    ENABLE_SEMI_SYNC_REPLICA = "enable-semi-sync-replica"
    DISABLE_SEMI_SYNC_REPLICA = "disable-semi-sync-replica"
    GTID_ERRANT_RESET_MASTER = "gtid-errant-reset-master"
    GTID_ERRANT_INJECT_EMPTY = "gtid-errant-inject-empty"
    # refactoring
    RELOCATE = "relocate"
    RELOCATE_REPLICAS = "relocate-replicas"
    MOVE_UP = "move-up"
    MOVE_UP_REPLICAS = "move-up-replicas"
    MOVE_BELOW = "move-below"
    MOVE_EQUIVALENT = "move-equivalent"
    TAKE_SIBLINGS = "take-siblings"
    TAKE_MASTER = "take-master"
    REPOINT = "repoint"
    REPOINT_REPLICAS = "repoint-replicas"
    MOVE_GTID = "move-gtid"
    MOVE_REPLICAS_GTID = "move-replicas-gtid"
    REGROUP_REPLICAS = "regroup-replicas"
    MAKE_CO_MASTER = "make-co-master"
    MATCH = "match"
    MATCH_UP = "match-up"
    MATCH_UP_REPLICAS = "match-up-replicas"

    @property
    def reply_timeout_s(self) -> float:
        """Moves wait for replicas to catch up and stream (bounded on the leader well below this)."""
        return 90.0


class AckScope(StrEnum):
    CLUSTER = "cluster"
    INSTANCE = "instance"
    ALL = "all"
    UID = "uid"


class CommandRequest(BaseModel):
    """A command for a service. Which fields matter depends on the verb (see `RecoveryVerb`).

    The API resolves aliases and instance names before sending: `cluster` is always the canonical
    cluster name (the master's `host:port`), `alias` its alias for messages.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_event_id)  # also the audit/trace id of the command
    verb: str
    requested_by: str = "anonymous"  # authenticated user or token name (never a secret)
    requested_at: datetime = Field(default_factory=utcnow)
    cluster: str | None = None
    alias: str | None = None
    instance: InstanceKey | None = None  # recover: the failed instance; ack-instance: the instance
    destination: InstanceKey | None = None  # recover: the candidate; takeover: the designated replica
    skip_hooks: bool = False  # recover-lite
    scope: AckScope | None = None  # ack-recoveries
    uid: str | None = None  # ack-recoveries by uid
    comment: str = ""  # ack-recoveries: mandatory reason
    argument: str = ""  # RefactorVerb: delay seconds, binary log name, or a replica pattern


class CommandStatus(StrEnum):
    """How a command ended. The API maps it to an HTTP status (in parentheses)."""

    OK = "ok"  # done (200)
    FAILED = "failed"  # attempted and failed, e.g. no candidate (500, as orchestrator's ERROR)
    REFUSED = "refused"  # not applicable: no actionable problem, bad destination, ... (409)
    NOT_FOUND = "not-found"  # unknown cluster, instance or uid (404)
    BAD_REQUEST = "bad-request"  # missing/invalid fields (400)
    BUSY = "busy"  # a recovery of this cluster is already running (409)


class BlockedRecovery(BaseModel):
    """One automated recovery refused by an anti-flapping block (orchestrator's `blocked-recoveries`
    entry, BlockedTopologyRecovery, snake_cased): the refused attempt, and the earlier recovery whose
    block refused it. Refusals of the same failed instance and code by the same block are one entry."""

    model_config = ConfigDict(frozen=True)

    cluster: str  # the refused attempt's cluster
    alias: str = ""
    instance: InstanceKey | None = None  # its failed instance
    analysis: str = ""  # its analysis code
    blocking_uid: str = ""  # the earlier recovery whose block refused it
    first_blocked_at: datetime | None = None  # its first refusal
    last_blocked_at: datetime | None = None  # its latest refusal (the leader retries every ~2 s)
    count: int = 0  # refusals so far
    blocked_until: datetime | None = None  # when the block ends unless acknowledged first
    reason: str = ""  # the refusal as the skipped record says it


class CommandReply(BaseModel):
    """The answer to a `CommandRequest`.

    - failovers/takeovers/recover: `recovery` = the `RecoveryRecord` dumped to JSON
      (`libs.recovery.audit`), `successor` = the promoted instance (None if none);
      graceful takeovers also give `write_outage_ms`;
    - ack-recoveries: `acknowledged` = the uids acknowledged (may be empty);
    - blocked-recoveries: `blocked`.

    `details`, when set, is served as orchestrator's `Details` as is (a responder that builds
    orchestrator's shapes itself). The API also accepts a reply that *is* orchestrator's envelope
    (`{"Code": "OK"|"ERROR", "Message", "Details"}`, optionally `"Status": <HTTP code>` for errors),
    which is what `services/recovery/verbs.py` answers today.
    """

    model_config = ConfigDict(frozen=True)

    status: CommandStatus
    message: str = ""
    recovery: dict[str, Any] | None = None
    successor: InstanceKey | None = None
    write_outage_ms: float | None = None
    acknowledged: list[str] = Field(default_factory=list)
    blocked: list[BlockedRecovery] = Field(default_factory=list)
    details: Any = None

    @property
    def ok(self) -> bool:
        return self.status is CommandStatus.OK


class RecoveryAcknowledged(BaseModel):
    """`data` of the Event the recovery publishes on `baton.recovery.<cluster>.acknowledged` for each
    acknowledged recovery (type `recovery.acknowledged`); the API's read model marks it acknowledged."""

    model_config = ConfigDict(frozen=True)

    uid: str
    by: str
    comment: str
    at: datetime = Field(default_factory=utcnow)


class CandidateRecord(BaseModel):
    """Value of `baton_candidates/<instance-key>`: a promotion rule registered at run time, until
    `expires_at` (CandidateInstanceExpireMinutes after registration)."""

    model_config = ConfigDict(frozen=True)

    instance: str  # host:port
    rule: PromotionRule
    registered_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    by: str = ""

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


class GlobalRecoveries(BaseModel):
    """Value of `baton_settings/recoveries`: the global switch of automated recoveries (absent: on)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool
    changed_at: datetime = Field(default_factory=utcnow)
    by: str = ""
