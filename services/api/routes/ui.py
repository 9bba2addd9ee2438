"""The web UI: one read-only page (vanilla JS and CSS, no build step, nothing loaded from outside the
API) at `/ui/`; `/` redirects there.

What it promises:
- The page and its assets need the same credentials as the read routes (`reader`). With basic/multi
  auth the browser asks once, on the page, and then sends the same credentials with every `fetch` and
  with the event stream (same origin, same realm). Bearer tokens cannot be sent by a browser's
  EventSource: with `AuthenticationMethod: token`, put the UI behind a proxy that adds the header.
- The page only reads (GET `/api/...` and the SSE stream `/api/events`); it has no control that
  changes anything.
- Assets are an explicit allow-list (no path ever reaches the filesystem from the URL), served with a
  Content-Security-Policy that only allows this origin, so the page cannot load anything from outside.

Explicit routes rather than a StaticFiles mount: the app's StripTrailingSlash middleware turns `/ui/`
into `/ui`, which a mount would redirect back to `/ui/` forever. Since `/ui` and `/ui/` are therefore
the same request, the page carries `<base href=".../ui/">` so its relative links resolve either way.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from services.api.auth import reader
from services.api.envelope import not_found

UI_DIR = Path(__file__).resolve().parents[1] / "ui"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
BASE_MARK = "<!--base-->"

router = APIRouter(tags=["ui"], include_in_schema=False)


def _prefix(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


@router.get("/")
async def root(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_prefix(request)}/ui/", status_code=307)


@router.get("/ui", dependencies=[Depends(reader)])
async def page(request: Request) -> HTMLResponse:
    text = (UI_DIR / "index.html").read_text(encoding="utf-8")
    base = f'<base href="{html.escape(_prefix(request))}/ui/">'
    return HTMLResponse(text.replace(BASE_MARK, base, 1), headers=HEADERS)


@router.get("/ui/{name}", dependencies=[Depends(reader)])
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise not_found(f"ui file {name}")
    return FileResponse(UI_DIR / name, media_type=ASSETS[name], headers=HEADERS)
