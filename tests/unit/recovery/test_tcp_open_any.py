"""The fence watch's overlapping TCP probes (libs/recovery/old_master.tcp_open_any) on real sockets."""

from __future__ import annotations

import asyncio
import socket
import time

from libs.models import InstanceKey
from libs.recovery.old_master import tcp_open_any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_server_that_starts_listening_is_found_at_the_next_attempt() -> None:
    port = _free_port()
    key = InstanceKey(host="127.0.0.1", port=port)
    probing = asyncio.create_task(tcp_open_any(key, 0.2, 0.05, 5.0))
    await asyncio.sleep(0.3)
    assert not probing.done()  # refused so far, still trying
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", port)
    listening = time.monotonic()
    try:
        assert await asyncio.wait_for(probing, 5)
        assert time.monotonic() - listening < 2.0  # a few spacings; generous for a loaded machine
    finally:
        server.close()
        await server.wait_closed()


async def test_nobody_listening_is_false_once_the_round_is_over() -> None:
    key = InstanceKey(host="127.0.0.1", port=_free_port())
    started = time.monotonic()
    assert not await tcp_open_any(key, 0.2, 0.05, 0.3)
    assert time.monotonic() - started >= 0.3
