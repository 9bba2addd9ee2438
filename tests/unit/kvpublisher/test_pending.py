from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.kvpublisher.backoff import Backoff
from services.kvpublisher.pending import Offer, PendingQueue
from tests.unit.kvpublisher.helpers import rec

NO_JITTER = Backoff(initial=0.1, maximum=5.0, jitter=0.0)


def test_only_the_newest_record_per_cluster_waits() -> None:
    q = PendingQueue(NO_JITTER)
    assert q.offer("a", rec("h1", 1), 0.0) is Offer.QUEUED
    assert q.offer("a", rec("h2", 2), 0.1) is Offer.REPLACED
    assert q.offer("a", rec("h3", 2), 0.2) is Offer.REPLACED  # same epoch: the later arrival wins
    assert len(q) == 1
    entry = q.take(1.0)
    assert entry is not None and entry.record.master.host == "h3" and entry.since == 0.2
    assert q.take(1.0) is None


def test_an_older_epoch_is_refused_while_a_newer_waits_or_flies() -> None:
    q = PendingQueue(NO_JITTER)
    q.offer("a", rec("new", 5), 0.0)
    assert q.offer("a", rec("old", 4), 0.0) is Offer.SUPERSEDED
    entry = q.take(0.0)
    assert entry is not None
    assert q.offer("a", rec("old", 4), 0.0) is Offer.SUPERSEDED  # in flight counts too
    assert q.offer("a", rec("new", 5), 0.0) is Offer.DUPLICATE
    q.done(entry)
    assert len(q) == 0


def test_a_cluster_in_flight_is_not_handed_out_twice() -> None:
    q = PendingQueue(NO_JITTER)
    q.offer("a", rec("h1", 1), 0.0)
    first = q.take(0.0)
    assert first is not None
    assert q.offer("a", rec("h2", 2), 0.0) is Offer.QUEUED
    assert q.take(0.0) is None  # h2 waits until h1's publish ends
    assert q.next_due(0.0) is None
    q.done(first)
    second = q.take(0.0)
    assert second is not None and second.record.master.host == "h2"


def test_a_failure_is_retried_with_growing_backoff_never_dropped() -> None:
    q = PendingQueue(NO_JITTER)
    q.offer("a", rec("h1", 1), 0.0)
    now, delays = 0.0, []
    for _ in range(8):
        entry = q.take(now)
        assert entry is not None
        delay = q.failed(entry, now)
        assert delay is not None
        delays.append(delay)
        assert q.take(now) is None  # not before its backoff
        assert q.next_due(now) == pytest.approx(delay)
        now += delay
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    entry = q.take(now)
    assert entry is not None and entry.attempts == 8 and entry.since == 0.0


def test_a_newer_record_arriving_during_a_failing_publish_replaces_the_retry() -> None:
    q = PendingQueue(NO_JITTER)
    q.offer("a", rec("h1", 1), 0.0)
    entry = q.take(0.0)
    assert entry is not None
    q.offer("a", rec("h2", 2), 0.5)
    assert q.failed(entry, 1.0) is None
    nxt = q.take(1.0)
    assert nxt is not None and nxt.record.master.host == "h2" and nxt.attempts == 0


def test_a_failing_cluster_does_not_hold_back_the_others() -> None:
    q = PendingQueue(NO_JITTER)
    q.offer("bad", rec("h1", 1, alias="bad"), 0.0)
    q.offer("good", rec("h2", 1, alias="good"), 0.0)
    bad = q.take(0.0)
    assert bad is not None and bad.key == "bad"  # the oldest goes first
    q.failed(bad, 0.0)
    good = q.take(0.0)
    assert good is not None and good.key == "good"


def test_forget_drops_what_waits() -> None:
    q = PendingQueue(NO_JITTER)
    q.offer("a", rec("h1", 1), 0.0)
    q.forget("a")
    assert len(q) == 0 and q.take(0.0) is None


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 5), st.booleans()), max_size=40))
def test_what_is_published_last_is_the_highest_epoch_offered(
    steps: list[tuple[str, int, bool]],
) -> None:
    """Whatever the interleaving of offers, takes and failures, each cluster ends at its newest.

    As in the worker, a record older than the newest known for its cluster is refused before the
    queue (baton_masters keeps the newest); the queue must then never end on an older one.
    """
    q = PendingQueue(NO_JITTER)
    newest: dict[str, int] = {}
    last_published: dict[str, int] = {}
    now = 0.0
    for n, (key, epoch, fail) in enumerate(steps):
        record = rec(f"h{n}", epoch, alias=key)
        if epoch < newest.get(key, -1):
            continue
        if q.offer(key, record, now) in (Offer.QUEUED, Offer.REPLACED):
            newest[key] = max(newest.get(key, -1), epoch)
        entry = q.take(now)
        if entry is not None:
            if fail:
                q.failed(entry, now)
            else:
                last_published[entry.key] = entry.record.epoch
                q.done(entry)
        now += 1.0
    while (entry := q.take(now + 100)) is not None:  # drain: everything succeeds now
        last_published[entry.key] = entry.record.epoch
        q.done(entry)
    assert len(q) == 0
    assert last_published == newest
