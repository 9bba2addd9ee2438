from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs.bus import messages, subjects
from libs.bus.connection import Bus, connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.models.events import Event


@pytest.fixture
async def bus(nats_server_module: NatsServer) -> AsyncIterator[Bus]:
    async with await connect(nats_server_module.url, "messages-test") as b:
        await provision(b.js)
        await b.js.purge_stream("BATON_DETECTIONS")
        yield b


def _event(cluster: str = "db-1.dc2.example.com:3306", data: dict[str, object] | None = None) -> Event:
    return Event(
        type="detection", source="analyzer", cluster=cluster, data=data or {"analysis": "DeadMaster"}
    )


async def test_publish_and_decode_event(bus: Bus) -> None:
    ev = _event()
    subject = subjects.detection_subject(ev.cluster or "")
    ack = await messages.publish_event(bus.js, subject, ev)
    assert ack.stream == "BATON_DETECTIONS" and not ack.duplicate
    raw = await bus.js.get_msg("BATON_DETECTIONS", seq=ack.seq)
    assert raw.headers is not None and raw.headers[messages.MSG_ID] == ev.id
    sub = await bus.js.subscribe(subject, ordered_consumer=True)
    try:
        msg = await sub.next_msg(timeout=2)
        decoded, ctx = messages.decode_event(msg)
        assert decoded == ev
        assert isinstance(ctx, Context)
    finally:
        await sub.unsubscribe()


async def test_same_event_id_is_stored_once(bus: Bus) -> None:
    ev = _event()
    subject = subjects.detection_subject("c1")
    first = await messages.publish_event(bus.js, subject, ev)
    again = await messages.publish_event(bus.js, subject, ev)
    assert again.duplicate and again.seq == first.seq
    other = await messages.publish_event(bus.js, subject, _event(), msg_id=ev.id)  # deterministic id
    assert other.duplicate
    info = await bus.js.stream_info("BATON_DETECTIONS")
    assert info.state.messages == 1


async def test_durable_consumer_acks_naks_and_terms(bus: Bus) -> None:
    subject = subjects.detection_subject("ack-test")
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(ev: Event, ctx: Context) -> None:
        seen.append(ev.id)
        if ev.data.get("fail_once") and seen.count(ev.id) == 1:
            raise RuntimeError("transient")
        if len(seen) >= 3:
            done.set()

    consumer = await messages.consume(
        bus.js, "baton.detection.ack-test", Event, handler, durable="acktest", nak_delay_s=0.3
    )
    try:
        await bus.js.publish(subject, b"not json")  # termed, never redelivered
        flaky = _event(data={"fail_once": True})
        fine = _event()
        await messages.publish_event(bus.js, subject, flaky)
        await messages.publish_event(bus.js, subject, fine)
        await asyncio.wait_for(done.wait(), timeout=5)
        await asyncio.sleep(0.5)  # room for any wrong redelivery to show up
        assert seen.count(flaky.id) == 2 and seen.count(fine.id) == 1 and len(seen) == 3
        info = await bus.js.consumer_info("BATON_DETECTIONS", "acktest")
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        await consumer.stop()


async def test_ordered_consumer_replays_history(bus: Bus) -> None:
    subject = subjects.detection_subject("replay")
    events = [_event() for _ in range(3)]
    for ev in events:
        await messages.publish_event(bus.js, subject, ev)
    got: list[str] = []
    all_in = asyncio.Event()

    async def handler(ev: Event, ctx: Context) -> None:
        got.append(ev.id)
        if len(got) == len(events):
            all_in.set()

    consumer = await messages.consume(bus.js, subject, Event, handler)
    try:
        await asyncio.wait_for(all_in.wait(), timeout=5)
        assert got == [e.id for e in events]
    finally:
        await consumer.stop()


async def test_trace_context_crosses_a_real_message(bus: Bus) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    subject = subjects.detection_subject("traced")
    received: list[int] = []
    got = asyncio.Event()

    async def handler(ev: Event, ctx: Context) -> None:
        with tracer.start_as_current_span("consumer", context=ctx) as span:
            received.append(span.get_span_context().trace_id)
        got.set()

    with tracer.start_as_current_span("publisher") as span:
        trace_id = span.get_span_context().trace_id
        await messages.publish_event(bus.js, subject, _event())
    consumer = await messages.consume(bus.js, subject, Event, handler)
    try:
        await asyncio.wait_for(got.wait(), timeout=5)
    finally:
        await consumer.stop()
    assert received == [trace_id]
    names = {s.name: s for s in exporter.get_finished_spans()}
    assert names["consumer"].parent is not None
    assert names["consumer"].context.trace_id == names["publisher"].context.trace_id
