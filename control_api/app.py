"""The control API's application factory: routes, the envelope middleware, bearer tokens."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from addon.catalog import session_problems
from addon.containers import Containers
from addon.engine import Execution
from addon.event_recorder import EventRecorder
from addon.scripts import Runtimes, minimal_env
from addon.sessions import SessionPool
from control_api import debug_routes, events_routes, hooks_routes, openapi
from control_api.envelope import ApiError, error_body, ok
from control_api.keys import (
    ALLOW_INLINE,
    CONTAINERS,
    ETAG,
    EVENTS,
    EXECUTION,
    LIVE_SESSIONS,
    MAX_BODY_BYTES,
    TOKEN,
)

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
    live = request.app.get(LIVE_SESSIONS)
    sessions = live if live is not None else request.app[EXECUTION].sessions
    load_problems = dict(sessions.load_problems) if sessions is not None else {}
    problems: list[dict[str, object]] = []
    for name, store in request.app[CONTAINERS]:
        snapshot = await asyncio.to_thread(store.read)
        for problem in await asyncio.to_thread(session_problems, snapshot, load_problems):
            problems.append({"container": name, **problem})
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
    healthy = all(c["error"] is None for c in containers) and not problems
    data: dict[str, object] = {
        "status": "ok" if healthy else "degraded",
        "containers": containers,
        "exec_sessions": {
            "workers": sessions.status() if sessions is not None else [],
            "problems": problems,
        },
    }
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


DRY_RUN_IDLE_S = 60.0


async def _close(sessions: SessionPool) -> None:
    sessions.close()


def make_app(
    containers: Containers,
    token: str = "",
    events: EventRecorder | None = None,
    allow_inline_scripts: bool = False,
    live_sessions: SessionPool | None = None,
) -> web.Application:
    """`live_sessions`: the proxy's exec sessions, when the API runs inside the proxy."""
    app = web.Application(middlewares=[envelope_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES)
    app[CONTAINERS] = containers
    app[TOKEN] = token
    app[ALLOW_INLINE] = allow_inline_scripts
    runtimes, env = Runtimes.detect(), minimal_env()
    user = live_sessions.user if live_sessions is not None else None  # hooks_script_user
    dry_run_sessions = SessionPool(runtimes, env, idle_s=DRY_RUN_IDLE_S, user=user)
    app[EXECUTION] = Execution(runtimes, env, dry_run_sessions)
    app.on_cleanup.append(lambda _: _close(dry_run_sessions))
    if live_sessions is not None:
        app[LIVE_SESSIONS] = live_sessions
    if events is not None:
        app[EVENTS] = events
    app.router.add_get("/healthz", healthz)
    hooks_routes.add_routes(app)
    events_routes.add_routes(app)
    debug_routes.add_routes(app)
    openapi.add_routes(app)
    return app
