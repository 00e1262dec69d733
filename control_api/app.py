"""The control API's application factory: routes, the envelope middleware, bearer tokens."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from addon.containers import Containers
from addon.event_recorder import EventRecorder
from addon.scripts import Runtimes
from control_api import debug_routes, events_routes, hooks_routes, openapi
from control_api.envelope import ApiError, error_body, ok
from control_api.keys import ALLOW_INLINE, CONTAINERS, ETAG, EVENTS, MAX_BODY_BYTES, RUNTIMES, TOKEN

log = logging.getLogger(__name__)

_AIOHTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def _from_aiohttp(exc: web.HTTPException) -> ApiError:
    if exc.status == 404:
        return ApiError(404, "Resource not found", "NOT_FOUND")
    return ApiError(exc.status, exc.reason, _AIOHTTP_CODES.get(exc.status))


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as the seed's envelope, and every answer about a container
    carries its ETag."""
    try:
        response = await handler(request)
    except ApiError as exc:
        response = web.json_response(error_body(exc), status=exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = web.json_response(error_body(_from_aiohttp(exc)), status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = web.json_response(
            error_body(ApiError(500, "Internal error; see the proxy-hooks log", "INTERNAL")),
            status=500,
        )
    etag = request.get(ETAG)
    if etag is not None and not response.prepared:
        response.headers["ETag"] = etag
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[TOKEN]
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "Missing or invalid bearer token", "UNAUTHORIZED")
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    containers = []
    for name, store in request.app[CONTAINERS]:
        snapshot = await asyncio.to_thread(store.read)
        error = store.error
        containers.append(
            {
                "id": name,
                "file": store.path.name,
                "file_version": snapshot.version,
                "etag": snapshot.etag,
                "error": None if error is None else [str(p) for p in error.problems],
            }
        )
    status = "ok" if all(c["error"] is None for c in containers) else "degraded"
    data: dict[str, object] = {"status": status, "containers": containers}
    events = request.app.get(EVENTS)
    if events is not None:
        data["events"] = {
            "store": str(events.store.path),
            "recording": events.recording,
            "written": events.written,
            "dropped": events.dropped,
            "error": events.error,
        }
    return ok("OK", data)


def make_app(
    containers: Containers,
    token: str = "",
    events: EventRecorder | None = None,
    allow_inline_scripts: bool = False,
) -> web.Application:
    app = web.Application(middlewares=[envelope_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES)
    app[CONTAINERS] = containers
    app[TOKEN] = token
    app[ALLOW_INLINE] = allow_inline_scripts
    app[RUNTIMES] = Runtimes.detect()
    if events is not None:
        app[EVENTS] = events
    app.router.add_get("/healthz", healthz)
    hooks_routes.add_routes(app)
    events_routes.add_routes(app)
    debug_routes.add_routes(app)
    openapi.add_routes(app)
    return app
