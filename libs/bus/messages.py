"""Publish and consume pydantic models over JetStream, carrying the trace context in headers.

Publishing sets `Nats-Msg-Id` (an event's id by default), so a retried publish inside the stream's
duplicate window collapses into one stored message. Consuming follows one ack policy everywhere:
ack after the handler succeeds; nak with a delay when it raises (redelivery later); term a payload that
cannot be decoded (redelivering it would never help) and log it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from pydantic import BaseModel, ValidationError

from libs.bus.connection import bus_errors
from libs.errors import BusError
from libs.models.events import Event
from libs.telemetry.propagation import extract_context, inject_headers

M = TypeVar("M", bound=BaseModel)
MSG_ID = "Nats-Msg-Id"
log = logging.getLogger(__name__)
_tracer = trace.get_tracer("baton.bus")


class UndecodableMessage(BusError):
    """A message's payload is not the JSON of the expected model."""


async def publish_model(
    js: JetStreamContext,
    subject: str,
    model: BaseModel,
    *,
    msg_id: str | None = None,
    headers: dict[str, str] | None = None,
    request_timeout_s: float | None = None,
) -> api.PubAck:
    """Publish `model` as JSON to a stream subject, with the current trace context; wait for the ack."""
    hdrs = dict(headers or {})
    if msg_id is not None:
        hdrs[MSG_ID] = msg_id
    with (
        _tracer.start_as_current_span(f"publish {subject}", kind=trace.SpanKind.PRODUCER),
        bus_errors(f"publishing to {subject}"),
    ):
        inject_headers(hdrs)
        return await js.publish(
            subject, model.model_dump_json().encode(), headers=hdrs, timeout=request_timeout_s
        )


async def publish_event(
    js: JetStreamContext, subject: str, event: Event, *, msg_id: str | None = None
) -> api.PubAck:
    """Publish an Event; its id is the Nats-Msg-Id unless `msg_id` (a deterministic one) is given."""
    return await publish_model(js, subject, event, msg_id=msg_id or event.id)


def trace_context(msg: Msg) -> Context:
    """The trace context a message carries (empty when none)."""
    return extract_context(msg.headers)


def decode_model(msg: Msg, model_type: type[M]) -> M:
    """Parse a message's payload as `model_type`. Raises UndecodableMessage (one line) if it is not."""
    try:
        return model_type.model_validate_json(msg.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise UndecodableMessage(
            f"{msg.subject}: not a {model_type.__name__} ({where}: {first['msg']})"
        ) from exc


def decode_event(msg: Msg) -> tuple[Event, Context]:
    """The Event in a message and the trace context to start a handler's child span in."""
    return decode_model(msg, Event), trace_context(msg)


Handler = Callable[[M, Context], Awaitable[None]]


@dataclass
class Consumer:
    """A running subscription; `stop()` unsubscribes (a durable consumer keeps its position)."""

    sub: JetStreamContext.PushSubscription

    async def stop(self) -> None:
        try:
            await self.sub.unsubscribe()
        except nats.errors.Error as exc:
            log.debug("unsubscribe: %s", exc)


async def consume(
    js: JetStreamContext,
    subject: str,
    model_type: type[M],
    handler: Handler[M],
    *,
    durable: str | None = None,
    queue: str | None = None,
    deliver_policy: api.DeliverPolicy | None = None,
    nak_delay_s: float = 2.0,
    ack_wait_s: float | None = None,
) -> Consumer:
    """Run `handler(model, trace_context)` for every message on `subject`, one at a time, in order.

    With `durable` the consumer is acked explicitly and resumes where it stopped (several processes
    sharing `queue` split the work); without it an ordered, ephemeral consumer replays from
    `deliver_policy` (default: everything) and needs no acks. Each handler runs in a CONSUMER span
    that continues the publisher's trace; the context passed to it holds that span.

    `ack_wait_s` (durable only): how long a delivered, unacknowledged message waits before JetStream
    delivers it again — to another subscriber of the queue when its first one died with it. An existing
    durable consumer is updated to it (JetStream's default is 30 s).
    """
    acked = durable is not None

    async def on_msg(msg: Msg) -> None:
        try:
            value = decode_model(msg, model_type)
        except UndecodableMessage as exc:
            log.error("dropping message: %s", exc)
            if acked:
                await _settle(msg.term())
            return
        with _tracer.start_as_current_span(
            f"handle {msg.subject}", context=trace_context(msg), kind=trace.SpanKind.CONSUMER
        ) as span:
            try:
                await handler(value, otel_context.get_current())
            except Exception as exc:  # noqa: BLE001 - any handler failure means "redeliver later"
                span.record_exception(exc)
                log.warning("handler failed on %s (redelivery in %gs): %s", msg.subject, nak_delay_s, exc)
                if acked:
                    await _settle(msg.nak(delay=nak_delay_s))
                return
        if acked:
            await _settle(msg.ack())

    with bus_errors(f"subscribing to {subject}"):
        if acked:
            config = api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT, deliver_policy=deliver_policy, ack_wait=ack_wait_s
            )
            if ack_wait_s is not None and durable is not None:
                await _update_ack_wait(js, subject, durable, ack_wait_s)
            sub = await js.subscribe(
                subject, queue=queue, durable=durable, cb=on_msg, manual_ack=True, config=config
            )
        else:
            sub = await js.subscribe(subject, cb=on_msg, ordered_consumer=True, deliver_policy=deliver_policy)
    return Consumer(sub)


async def _update_ack_wait(js: JetStreamContext, subject: str, durable: str, ack_wait_s: float) -> None:
    """Bring an existing durable consumer to `ack_wait_s` (a consumer created by an older version keeps
    its settings otherwise); a consumer that does not exist yet is created by the subscribe."""
    stream = await js.find_stream_name_by_subject(subject)
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return
    if info.config.ack_wait is not None and abs(info.config.ack_wait - ack_wait_s) < 1e-3:
        return
    await js.add_consumer(stream, dataclasses.replace(info.config, ack_wait=ack_wait_s))


async def _settle(ack: Awaitable[None]) -> None:
    """Ack/nak/term, tolerating a connection that dropped meanwhile (the server redelivers anyway)."""
    try:
        await ack
    except nats.errors.Error as exc:
        log.warning("could not settle message: %s", exc)
