"""A headless Chromium driven over the DevTools protocol (aiohttp websocket, no Playwright): open a
page, wait in real time until a JavaScript condition holds, read the DOM, take a screenshot.

`--dump-dom` with `--virtual-time-budget` cannot be used for pages holding an open EventSource: the
pending request stops virtual time and Chromium never returns. Chromium listens on loopback only
(`--remote-debugging-port=0`, the port read from DevToolsActivePort in its own profile directory).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: str) -> None:
        self.ws = ws
        self.session = session
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids) + 1000
        await self.ws.send_json({"id": msg_id, "method": method, "params": params, "sessionId": self.session})
        while True:
            reply = json.loads((await self.ws.receive(timeout=30)).data)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, condition: str, within: float = 20.0) -> bool:
        """Poll a JavaScript boolean expression until true (False after `within` seconds)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self.evaluate(f"Boolean({condition})"):
                return True
            await asyncio.sleep(0.2)
        return False

    async def dom(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


async def _port(profile: Path, proc: subprocess.Popen[bytes], within: float = 20.0) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        await asyncio.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")


@contextlib.asynccontextmanager
async def open_page(url: str, profile: Path, width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """Start Chromium (its own profile dir), open `url`, yield the page; stop Chromium after."""
    assert CHROMIUM is not None, "no chromium"
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = await _port(profile, proc)
        async with aiohttp.ClientSession() as http:
            version = await (await http.get(f"http://127.0.0.1:{port}/json/version")).json()
            async with http.ws_connect(version["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await ws.send_json(
                    {"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}}
                )
                target = await _reply(ws, 1)
                attach = {"targetId": target["targetId"], "flatten": True}
                await ws.send_json({"id": 2, "method": "Target.attachToTarget", "params": attach})
                page = Page(ws, (await _reply(ws, 2))["sessionId"])
                await page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                await page.call("Page.enable")
                await page.call("Page.navigate", url=url)
                yield page
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def _reply(ws: aiohttp.ClientWebSocketResponse, msg_id: int) -> dict[str, Any]:
    while True:
        reply = json.loads((await ws.receive(timeout=30)).data)
        if reply.get("id") == msg_id:
            result: dict[str, Any] = reply["result"]
            return result
