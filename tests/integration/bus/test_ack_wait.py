"""A message delivered to a consumer that dies before acknowledging it goes to the next one after
`ack_wait_s` — not after JetStream's default 30 s — and an existing durable consumer is brought to it.

This is what lets a new recovery leader act on a detection the old one received and died with."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from opentelemetry.context import Context

from libs.bus import messages, subjects
from libs.bus.connection import connect
from libs.bus.provision import provision
from libs.bus.server import NatsServer
from libs.models.events import Event

DURABLE = "ack-wait-test"


async def test_an_unacked_message_goes_to_the_next_consumer_after_ack_wait(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as server:
        first = await connect(server.url, "first")
        second = await connect(server.url, "second")
        try:
            await provision(first.js)
            # an existing durable consumer with JetStream's default ack wait (30 s) ...
            old = await messages.consume(
                first.js, subjects.DETECTIONS_ALL, Event, _never, durable=DURABLE, queue=DURABLE
            )
            await old.stop()
            stream = await first.js.find_stream_name_by_subject(subjects.DETECTIONS_ALL)
            assert (await first.js.consumer_info(stream, DURABLE)).config.ack_wait == 30

            got_first: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

            async def hang(event: Event, _ctx: Context) -> None:  # receives, then "dies" without an ack
                got_first.set_result(event)
                await asyncio.sleep(3600)

            # ... is brought to 2 s by the next subscriber that asks for it
            await messages.consume(
                first.js, subjects.DETECTIONS_ALL, Event, hang, durable=DURABLE, queue=DURABLE, ack_wait_s=2
            )
            assert (await first.js.consumer_info(stream, DURABLE)).config.ack_wait == 2

            event = Event(type="detection.active", source="test", cluster="c1:3306", data={})
            await messages.publish_event(first.js, subjects.detection_subject("c1:3306"), event)
            assert (await asyncio.wait_for(got_first, 10)).id == event.id
            delivered_at = time.monotonic()
            await first.nc.close()  # the subscriber dies with the message unacknowledged

            got_second: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

            async def take(e: Event, _ctx: Context) -> None:
                if not got_second.done():
                    got_second.set_result(e)

            await messages.consume(
                second.js, subjects.DETECTIONS_ALL, Event, take, durable=DURABLE, queue=DURABLE, ack_wait_s=2
            )
            again = await asyncio.wait_for(got_second, 20)
            assert again.id == event.id
            assert time.monotonic() - delivered_at < 15  # well before the default 30 s
        finally:
            await first.close()
            await second.close()


async def _never(_event: Event, _ctx: Context) -> None:
    raise AssertionError("nothing is published before the consumer is replaced")
