"""The recovery leader keeps `baton_masters` holding every cluster's master (the I/O around `seeding`).

- **Seeding** (`MasterKeeper.run`): during a leadership term, soon after it starts and then every poll
  interval, every cluster of the fleet memory with a unique live writable master and no record gets one,
  created with `kv.create` (first writer wins: a seed never replaces anything, so it can never undo a
  failover's record), stamped with the leader's epoch and no recovery uid. Nothing is seeded while a
  recovery runs (its cluster is about to get the record that matters). Each seed is a `masters.seeded`
  event on `baton.audit.masters`. Errors are logged and the next tick tries again; only a lost
  leadership ends the loop.
- **Submitting** (`MasterKeeper.submit`, the `submit-masters-to-kv-stores` command): the same decision,
  plus replacing (compare-and-set, never over a newer epoch) a record that names a server which is no
  longer a live writable master; then every kvpublisher is asked to reconcile
  (`baton.cmd.kvpublisher.reconcile`), so a Consul that lost its keys gets them back even when
  baton_masters did not change. One `masters.submitted` event says what was done and by whom.

Only the leader writes: it is the single fenced writer of baton_masters, and `fence.check()` runs before
every write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from libs.bus.messages import publish_event
from libs.bus.subjects import audit_subject, cmd_subject
from libs.errors import BatonError, BusError, LeadershipLost
from libs.kv.layout import DEFAULT_PREFIX
from libs.models import Event, InstanceKey, MasterRecord, utcnow
from libs.models.operator import KV_RECONCILE, KVPUBLISHER_SERVICE
from libs.recovery.fence import Fence
from libs.recovery.masters import MasterBook
from libs.recovery.recovery_events import SOURCE
from libs.recovery.seeding import Action, Decision, decide, kv_pairs, seeds
from libs.topology.view import ClusterView, InstanceState, group_clusters

log = logging.getLogger(__name__)

AUDIT_KIND = "masters"  # baton.audit.masters
SEEDED = "masters.seeded"
SUBMITTED = "masters.submitted"
RECONCILE_SUBJECT = cmd_subject(KVPUBLISHER_SERVICE, KV_RECONCILE)

Emit = Callable[[Event, str], Awaitable[None]]  # (event, Nats-Msg-Id)
Republish = Callable[[], Awaitable[int]]  # 1 when a kvpublisher said it reconciles, 0 when none did
Known = Callable[[], Mapping[InstanceKey, InstanceState]]


def audit_emitter(js: JetStreamContext) -> Emit:
    """Events on `baton.audit.masters`; a failed publish is logged (the KV record is the truth)."""

    async def emit(event: Event, msg_id: str) -> None:
        try:
            await publish_event(js, audit_subject(AUDIT_KIND), event, msg_id=msg_id)
        except BusError as exc:
            log.warning("could not publish %s for %s: %s", event.type, event.cluster, exc)

    return emit


async def request_reconcile(nc: Client, timeout_s: float = 2.0) -> int:
    """Ask every kvpublisher to reconcile now. Every process subscribed receives the request (no queue
    group); this returns 1 once one of them answered, 0 when none runs or none answered in time."""
    try:
        msg = await nc.request(RECONCILE_SUBJECT, b"{}", timeout=timeout_s)
    except nats.errors.NoRespondersError:
        log.info("no kvpublisher answers %s: Consul is written when one runs", RECONCILE_SUBJECT)
        return 0
    except nats.errors.Error as exc:
        log.warning("kvpublisher reconcile request failed: %s", type(exc).__name__)
        return 0
    log.debug("kvpublisher reconcile requested: %s", msg.data[:200])
    return 1


@dataclass
class Submission:
    """What `submit` did, per cluster."""

    written: list[Decision] = field(default_factory=list)  # created or replaced
    kept: list[Decision] = field(default_factory=list)  # the record was right already
    skipped: list[Decision] = field(default_factory=list)  # no master Baton may name (reason)
    failed: list[tuple[Decision, str]] = field(default_factory=list)  # the write failed (error)
    submitted: list[MasterRecord] = field(default_factory=list)  # what baton_masters holds now, in order
    kvpublishers: int = 0  # what `republish` answered (1: the kvpublishers reconcile; 0: none runs)


class MasterKeeper:
    def __init__(
        self,
        book: MasterBook,
        *,
        stale_after: timedelta,
        prefix: str = DEFAULT_PREFIX,
        node: str | None = None,
        emit: Emit | None = None,
        republish: Republish | None = None,
        busy: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.book, self.stale_after, self.prefix = book, stale_after, prefix
        self.node, self.emit, self.republish = node, emit, republish
        self.busy, self.clock = busy, clock

    # -- seeding -------------------------------------------------------------------------------------
    async def seed(self, views: Iterable[ClusterView], fence: Fence) -> list[MasterRecord]:
        """One pass: create the record of every cluster that needs one; the records created."""
        if self.busy():
            return []
        records = await self.book.records()
        created = []
        for record in seeds(views, records, self.clock(), self.stale_after, fence.epoch):
            fence.check()
            if not await self.book.create(record):
                continue  # someone was first (a recovery, or the operator's submit): theirs stands
            created.append(record)
            log.info("baton_masters: seeded %s -> %s (epoch %d)", record.alias, record.master, record.epoch)
            await self._event(SEEDED, {"record": record.model_dump(mode="json")}, record=record)
        return created

    async def run(self, fence: Fence, known: Known, *, period_s: float, first_delay_s: float = 1.0) -> None:
        """Seed every `period_s` (first after `first_delay_s`) until the leadership is lost."""
        delay = first_delay_s
        while True:
            await asyncio.sleep(delay)
            delay = period_s
            try:
                await self.seed(group_clusters(known().values()), fence)
            except LeadershipLost:
                return
            except Exception as exc:  # noqa: BLE001 - the next tick tries again
                log.warning("seeding baton_masters failed (retrying in %gs): %s", period_s, exc)

    # -- submit-masters-to-kv-stores -----------------------------------------------------------------
    async def submit(
        self, views: Iterable[ClusterView], fence: Fence, *, cluster: str | None = None, by: str = ""
    ) -> Submission:
        """Make baton_masters hold the live master of every cluster (of `cluster` only, when given),
        then ask the kvpublishers to reconcile. LeadershipLost propagates."""
        records = await self.book.records()
        decisions = decide(views, records, self.clock(), self.stale_after, fence.epoch)
        if cluster is not None:
            decisions = [d for d in decisions if d.view.name == cluster]
        done = Submission()
        for d in decisions:
            if d.action is Action.SKIP:
                done.skipped.append(d)
                continue
            if d.action is Action.KEEP:
                done.kept.append(d)
            else:
                error = await self._write(d, fence)
                if error is not None:
                    done.failed.append((d, error))
                    continue
                done.written.append(d)
            assert d.record is not None
            done.submitted.append(d.record)
        if self.republish is not None:
            done.kvpublishers = await self.republish()
        await self._event(
            SUBMITTED,
            {
                "by": by,
                "cluster": cluster,
                "written": [d.record.model_dump(mode="json") for d in done.written if d.record],
                "kept": [d.view.name for d in done.kept],
                "skipped": {d.view.name: d.reason for d in done.skipped},
                "failed": {d.view.name: error for d, error in done.failed},
                "kvpublishers": done.kvpublishers,
            },
            cluster=cluster,
            epoch=fence.epoch,
        )
        return done

    def pairs(self, done: Submission) -> list[dict[str, str]]:
        """orchestrator's Details: the `{"Key", "Value"}` pairs of the submitted masters."""
        return kv_pairs(done.submitted, self.prefix)

    async def _write(self, d: Decision, fence: Fence) -> str | None:
        """Create or replace `d.record`: None when written, else why not."""
        assert d.record is not None
        fence.check()
        try:
            if d.action is Action.REPLACE:
                await self.book(d.record)
            elif not await self.book.create(d.record):
                return f"{d.key} was written meanwhile (a recovery?): submit again to see it"
        except LeadershipLost:
            raise
        except BatonError as exc:
            return str(exc)
        return None

    async def _event(
        self,
        kind: str,
        data: dict[str, object],
        *,
        record: MasterRecord | None = None,
        cluster: str | None = None,
        epoch: int | None = None,
    ) -> None:
        if self.emit is None:
            return
        event = Event(
            type=kind,
            cluster=record.cluster if record is not None else cluster,
            instance=str(record.master) if record is not None else None,
            source=SOURCE,
            node=self.node or Event.model_fields["node"].default,
            epoch=record.epoch if record is not None else epoch,
            data=data,
        )
        msg_id = f"{kind}:{record.alias}:{record.epoch}" if record is not None else event.id
        await self.emit(event, msg_id)
