"""In-process fan-out of newly projected events to SSE clients.

The projector publishes each committed batch's event rows here, so a live client sees exactly the rows
a replay would return, with the same ids: replay (from the store, by id) and live (from here) join
without a gap or a duplicate. A client whose queue fills up (too slow) is dropped; it reconnects with
`Last-Event-ID` and replays what it missed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

QUEUE_SIZE = 1000


@dataclass(frozen=True)
class LiveEvent:
    id: int
    type: str
    cluster: str | None
    payload: str  # the Event JSON


class Subscription:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    async def get(self, wait_s: float) -> LiveEvent | None:
        """The next event, or None on timeout or when dropped."""
        try:
            return await asyncio.wait_for(self.queue.get(), wait_s)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.hub.subscribers.discard(self)


class Hub:
    def __init__(self) -> None:
        self.subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self.subscribers.add(sub)
        return sub

    def publish(self, events: list[LiveEvent]) -> None:
        for sub in list(self.subscribers):
            for event in events:
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.dropped = True
                    sub.close()
                    break
