"""The web UI (`/ui/`) served by a real `python -m services.api` on a real nats-server, fed with
snapshots probed from a real 4-node sandbox (one replica's SQL thread stopped, so one node is "not
replicating"), a detection and a recovery: the page and its assets are served (same origin only,
behind the API's auth), and — when Chromium is installed — a headless browser renders every instance
of the topology, coloured by state, with the master on top, plus the recovery and the live events.

Chromium: `apt-get install -y chromium` (Debian); without it the browser tests skip. It is driven over
the DevTools protocol (tests/integration/api/browser.py). BATON_UI_SCREENSHOT=path keeps the screenshot.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from libs.bus.server import NatsServer
from libs.bus.subjects import detection_subject, recovery_subject
from libs.models import InstanceKey
from libs.sandbox import Sandbox
from libs.topology.detection_event import to_event
from tests.integration.api import builders
from tests.integration.api.browser import CHROMIUM, open_page
from tests.integration.api.conftest import ApiProcess, new_store_url, publish_topology, start_api
from tests.integration.api.test_events import publish

UI = Path(__file__).resolve().parents[3] / "services" / "api" / "ui"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium for the headless check (apt-get install -y chromium)"
)
STOPPED = "replica3"  # its SQL thread is stopped: the UI must show it as not replicating
FAILED = InstanceKey(host="db-old.example", port=3306)  # a past recovery of another cluster


@pytest.fixture(scope="module")
def ui_api(
    tmp_path_factory: pytest.TempPathFactory, nats_server_module: NatsServer, sandbox4: Sandbox
) -> Iterator[ApiProcess]:
    tmp = tmp_path_factory.mktemp("ui")
    # snapshots are published once: a long poll interval keeps them valid (not "unreachable") meanwhile
    config = {"InstancePollSeconds": 60}
    api = start_api(tmp, nats_server_module.url, new_store_url("sqlite", tmp, None), "sqlite", config)
    try:
        asyncio.run(sandbox4.sql(STOPPED, "STOP SLAVE SQL_THREAD"))
        publish_topology(sandbox4, api.nats_url)
        master = str(sandbox4.key("master"))
        resp = api.wait_for(f"cluster/{master}", lambda r: r.status_code == 200 and len(r.json()) == 4)
        assert resp.status_code == 200, resp.text
        det = builders.detection(str(FAILED), FAILED)
        record = builders.recovery(det, succeed_to=InstanceKey(host="db-new.example", port=3306))
        event = builders.recovery_event(record, "completed")
        asyncio.run(publish(api, [(recovery_subject(str(FAILED), "completed"), event)]))
        recs = api.wait_for("audit-recovery", lambda r: r.status_code == 200 and len(r.json()) >= 1)
        assert recs.json(), recs.text
        yield api
    finally:
        api.stop()
        asyncio.run(sandbox4.sql(STOPPED, "START SLAVE SQL_THREAD"))


def test_root_redirects_to_the_ui(ui_api: ApiProcess) -> None:
    resp = httpx.get(f"{ui_api.base}/", follow_redirects=False, timeout=10)
    assert resp.status_code == 307 and resp.headers["location"] == "/ui/"


@pytest.mark.parametrize("path", ["/ui/", "/ui"])
def test_page_is_served_with_its_base(ui_api: ApiProcess, path: str) -> None:
    resp = httpx.get(f"{ui_api.base}{path}", timeout=10)
    assert resp.status_code == 200, "UI router not registered in services/api/app.py?"
    assert resp.headers["content-type"].startswith("text/html")
    assert '<base href="/ui/">' in resp.text
    assert 'src="app.js"' in resp.text and 'href="style.css"' in resp.text
    assert "default-src 'self'" in resp.headers["content-security-policy"]


@pytest.mark.parametrize(("name", "kind"), [("app.js", "text/javascript"), ("style.css", "text/css")])
def test_assets_are_served(ui_api: ApiProcess, name: str, kind: str) -> None:
    resp = httpx.get(f"{ui_api.base}/ui/{name}", timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith(kind)
    assert resp.text == (UI / name).read_text()


@pytest.mark.parametrize("name", ["index.html.bak", "..%2Froutes%2Fui.py", "nope.js"])
def test_only_the_ui_files_are_served(ui_api: ApiProcess, name: str) -> None:
    assert httpx.get(f"{ui_api.base}/ui/{name}", timeout=10).status_code == 404


def test_page_is_small_and_loads_nothing_from_outside() -> None:
    assert len((UI / "app.js").read_text().splitlines()) < 400
    for path in UI.iterdir():
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", path.read_text())
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, (path.name, urls)
    assert re.findall(r"fetch\(|EventSource\(", (UI / "app.js").read_text())


def test_ui_needs_the_api_credentials(
    tmp_path: Path, nats_server_module: NatsServer, ui_api: ApiProcess
) -> None:
    config = {"AuthenticationMethod": "multi", "HTTPAuthUser": "admin", "HTTPAuthPassword": "pw-ui-test-1"}
    api = start_api(
        tmp_path, nats_server_module.url, new_store_url("sqlite", tmp_path, None), "sqlite", config
    )
    try:
        page = httpx.get(f"{api.base}/ui/", timeout=10)
        assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(f"{api.base}/ui/app.js", timeout=10).status_code == 401
        readonly = httpx.get(f"{api.base}/ui/", auth=("readonly", "x"), timeout=10)
        assert readonly.status_code == 200 and "app.js" in readonly.text
    finally:
        api.stop()


LOADED = (
    "document.querySelectorAll('g.node').length >= 4"
    " && document.getElementById('stream').textContent.includes('live')"
    " && document.getElementById('recoveries').textContent.includes('DeadMaster')"
)


def node_rows(dom: str) -> dict[str, dict[str, str]]:
    pattern = (
        r'<g class="node (?P<cls>\w+)" data-key="(?P<key>[^"]+)" data-state="(?P<state>\w+)" '
        r'transform="translate\((?P<x>[\d.]+),(?P<y>[\d.]+)\)"'
    )
    return {m["key"]: m.groupdict() for m in re.finditer(pattern, dom)}


@needs_chromium
async def test_browser_draws_the_topology(ui_api: ApiProcess, sandbox4: Sandbox, tmp_path: Path) -> None:
    keys = {name: str(sandbox4.key(name)) for name in sandbox4.names}
    async with open_page(f"{ui_api.base}/ui/", tmp_path / "profile") as page:
        assert await page.wait_for(LOADED), (await page.dom())[:3000]
        # a replica does not replicate: the header must not say "healthy" beside that problem
        badge = "document.getElementById('health').textContent"
        assert await page.wait_for(f"/problem/.test({badge})", within=15), await page.evaluate(badge)
        assert await page.evaluate("document.getElementById('health').className") == "pill unreachable"
        dom = await page.dom()
        shot = Path(os.environ.get("BATON_UI_SCREENSHOT") or tmp_path / "ui.png")
        await page.screenshot(shot)
    nodes = node_rows(dom)
    assert set(nodes) == set(keys.values()), dom[:3000]
    master = nodes[keys["master"]]
    assert master["state"] == "ok" and nodes[keys[STOPPED]]["state"] == "nonreplicating"
    assert [n["cls"] for n in nodes.values()] == [n["state"] for n in nodes.values()]
    replicas = [nodes[k] for n, k in keys.items() if n != "master"]
    assert all(float(r["y"]) > float(master["y"]) for r in replicas), "the master is drawn on top"
    assert {r["y"] for r in replicas} == {replicas[0]["y"]}, "the three replicas share a row"
    assert dom.count('class="edge"') == 3
    assert "db-new.example:3306" in dom, "the recovery's successor is listed"
    assert 'data-type="recovery.completed"' in dom, "replayed events are listed"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@needs_chromium
async def test_browser_shows_a_live_detection(ui_api: ApiProcess, tmp_path: Path) -> None:
    key = InstanceKey(host="db-live.example", port=3306)
    event = to_event(builders.detection(str(key), key))
    async with open_page(f"{ui_api.base}/ui/", tmp_path / "profile") as page:
        assert await page.wait_for(LOADED)
        await publish(ui_api, [(detection_subject(str(key)), event)])
        shown = "document.getElementById('events').textContent.includes('db-live.example:3306')"
        assert await page.wait_for(shown, within=15), (await page.dom())[-3000:]
        first = await page.evaluate("document.querySelector('#events li').dataset.type")
        assert first == "detection.active", "the newest event is on top"
