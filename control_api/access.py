"""Who may reach the control API: the checks at its door, before any handler runs.

Loopback is not a boundary against a browser on the same machine: a page on another site can
make the browser send requests to 127.0.0.1 (through a DNS name it rebinds to 127.0.0.1, or a
cross-site form or `fetch` in no-cors mode). Like Caddy's admin endpoint, every request passes,
in this order:

1. **Host** (421): the `Host` header must name this API: the address it is bound to (real port
   included when port 0 was asked), `localhost`/`127.0.0.1`/`[::1]` with that port, the listen
   name with that port, or a name allowed by `hooks_api_hosts` / `--api-host` (`name` allows any
   port, `name:port` only that one). Compared exactly as sent: browsers send lowercase names,
   so `LOCALHOST`, `localhost.`, `127.1` or `user@localhost` are names of something else. A
   request without a `Host` (HTTP/1.0) is let through: browsers always send one.
2. **Origin** (403): a request that carries `Origin` must come from `http(s)://<allowed Host>`;
   `Sec-Fetch-Site` other than `same-origin` or `none` is refused too. No CORS header is ever
   sent, so a preflight can never succeed.
3. **Token** (401), when one is set: `Authorization: Bearer <token>`, ASCII only. The
   dashboard's static files (`/`, `/ui/…`, GET only) are exempt: a browser's navigation cannot
   carry the token, and they hold no data — the page asks for the token and sends it itself.
4. **JSON only** (415): a POST, PUT, PATCH or DELETE with a body (a Content-Length above 0, or
   chunked) must say `Content-Type: application/json` (parameters allowed; a charset, if given,
   is utf-8); a body-less DELETE needs none, and a GET's body is never read. No browser can send
   JSON cross-site without a preflight, which step 2 refuses.

Only then do the routes run, with their own order for writes (404 → 428 → 412 → 413 → 422):
a request refused here has read nothing, so its answer carries no ETag.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from control_api.envelope import ApiError
from control_api.hosts import split_host
from control_api.keys import HOST_POLICY, TOKEN
from control_api.ui_routes import is_public

SAFE_FETCH_SITES = {"same-origin", "none"}


def _bound(request: web.Request) -> tuple[str, int] | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return None


def _where(bound: tuple[str, int] | None) -> str:
    """The address to suggest: the bound one, or 127.0.0.1 for a wildcard bind."""
    if bound is None:
        return "http://127.0.0.1:<port>"
    host, port = bound
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_host(request: web.Request) -> None:
    values = request.headers.getall("Host", [])
    if not values:
        return  # HTTP/1.0 without Host: not a browser
    host = values[0]
    bound = _bound(request)
    if len(values) == 1 and request.app[HOST_POLICY].allows(host, bound):
        return
    parsed = split_host(host)
    name = (parsed[0] if parsed else "") or "NAME"
    raise ApiError(
        421,
        f"Host {host!r} is not an address of this API (a page on another site may be trying to "
        f"reach it through a DNS name that points here). Call {_where(bound)}, or allow the name: "
        f"proxy-hooks api/run --api-host {name} (mitmdump: --set hooks_api_hosts={name})",
        "MISDIRECTED",
    )


def check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is not None:
        scheme, sep, host = origin.partition("://")
        allowed = (
            sep
            and scheme in ("http", "https")
            and "/" not in host
            and request.app[HOST_POLICY].allows(host, _bound(request))
        )
        if not allowed:
            raise ApiError(
                403,
                f"Origin {origin!r} is not this API's: the control API takes no cross-origin "
                "requests (a page on another site must not drive it). Call it from a non-browser "
                "client, or from a page served under an allowed Host (--api-host / hooks_api_hosts)",
                "FORBIDDEN_ORIGIN",
            )
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in SAFE_FETCH_SITES:
        raise ApiError(
            403,
            f"Request refused (Sec-Fetch-Site: {site}): the control API takes no requests made "
            "by another site's page",
            "FORBIDDEN_ORIGIN",
        )


def check_token(request: web.Request) -> None:
    token = request.app[TOKEN]
    if not token:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip()
    if (
        scheme.lower() != "bearer"
        or not given.isascii()
        or not hmac.compare_digest(given.encode("ascii"), token.encode())
    ):
        raise ApiError(401, "Missing or invalid bearer token", "UNAUTHORIZED")


BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def check_json_body(request: web.Request) -> None:
    # A GET's or HEAD's body is never read (and no browser sends one). A body is a Content-Length
    # above 0 or a chunked one.
    if request.method not in BODY_METHODS or not request.body_exists:
        return
    charset = (request.charset or "utf-8").lower()
    if (
        request.content_type == "application/json"
        and "Content-Type" in request.headers
        and charset
        in (
            "utf-8",
            "utf8",
        )
    ):
        return
    given = request.headers.get("Content-Type")
    raise ApiError(
        415,
        f"Request bodies must be JSON: send 'Content-Type: application/json' "
        f"(got {'no Content-Type' if given is None else repr(given)})",
        "UNSUPPORTED_MEDIA_TYPE",
    )


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host, then Origin, then the token, then the body's type: each before any handler (the
    404 and 405 of the router included) runs."""
    check_host(request)
    check_origin(request)
    if not is_public(request.method, request.path):
        check_token(request)
    check_json_body(request)
    return await handler(request)
