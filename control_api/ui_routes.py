"""The dashboard: static files under `/ui/`, served by the control API itself, and `/`.

Everything the page needs ships in the package (`control_api/ui/`, third-party builds in
`control_api/ui/vendor/`), so it works offline and loads nothing from another origin. The files
are public: a browser's navigation cannot carry a bearer token, and they hold no data — the page
asks for the token and sends it with every API call (see `control_api.access`). The Host and
Origin checks still apply to them like to everything else.

Each answer carries a Content-Security-Policy that allows scripts, styles and connections from
this origin only and no inline script, so even a hook description holding markup could not run.
"""

from __future__ import annotations

import functools
import mimetypes
from pathlib import Path

from aiohttp import web

from control_api import schemas
from control_api.envelope import not_found, ok
from control_api.operations import TAG_SERVER, Operation, Route

UI_DIR = Path(__file__).resolve().parent / "ui"
UI_PREFIX = "/ui/"
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
UI_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A new version of the package must not meet an old cached page.
    "Cache-Control": "no-cache",
}
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html"}


def is_public(method: str, path: str) -> bool:
    """The requests the token check lets through: GETs of the page and its static files."""
    return method in ("GET", "HEAD") and (path == "/" or path.startswith(UI_PREFIX))


@functools.cache
def assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the dashboard by its name under /ui/, read once: only these are served,
    so no request path ever reaches the file system."""
    found: dict[str, tuple[bytes, str]] = {}
    for path in sorted(UI_DIR.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix != ".md":
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            found[path.relative_to(UI_DIR).as_posix()] = (path.read_bytes(), kind)
    return found


async def ui_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"] or "index.html"
    asset = assets().get(name)
    if asset is None:
        raise not_found("path", f"no dashboard file {name!r}")
    body, kind = asset
    charset = "utf-8" if kind.startswith("text/") else None
    return web.Response(body=body, content_type=kind, charset=charset, headers=UI_HEADERS)


async def index(request: web.Request) -> web.Response:
    """A browser goes to the dashboard; anything else gets the links as JSON."""
    if "text/html" in request.headers.get("Accept", ""):
        raise web.HTTPFound(UI_PREFIX)
    links = {
        "dashboard": UI_PREFIX,
        "openapi": "/api/v1/openapi.json",
        "health": "/healthz",
        "containers": "/api/v1/containers",
    }
    return ok("proxy-hooks control API", {"links": links})


ROUTES = (
    Route("GET", "/", index, Operation(
        "getIndex", TAG_SERVER,
        "Links to the dashboard and the API (a browser, Accept: text/html, is redirected to /ui/)",
        schemas.Index, "proxy-hooks control API", errors=(), container=False,
    )),
    Route("GET", UI_PREFIX + "{asset}", ui_asset, Operation(
        "getDashboardAsset", TAG_SERVER,
        "The dashboard's files (index.html when empty); no token needed, they hold no data",
        None, "", container=False, media=("text/html", "text/javascript", "text/css", "text/plain"),
    ), pattern=UI_PREFIX + "{asset:.*}"),
)  # fmt: skip
