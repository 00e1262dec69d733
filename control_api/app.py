"""The control API's application factory: routes, the envelope middleware, bearer tokens."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from addon.catalog import health_problems
from addon.containers import Containers
from addon.engine import Execution
from addon.event_recorder import EventRecorder
from addon.paths import EncodedSlashes
from addon.remote_hooks import RemoteHooks
from addon.scripts import Runtimes, minimal_env
from addon.sessions import SessionPool
from addon.store import StoreUnavailable
from control_api import (
    apply_routes,
    capture_routes,
    debug_routes,
    events_routes,
    hooks_routes,
    metrics,
    openapi,
    protocol_routes,
    schemas,
    ui_routes,
)
from control_api.access import access_middleware
from control_api.envelope import ApiError, error_body, not_found, ok
from control_api.hosts import HostPolicy
from control_api.keys import (
    ALLOW_INLINE,
    CONTAINERS,
    ENCODED_SLASHES,
    ETAG,
    EVENTS,
    EXECUTION,
    HOST_POLICY,
    LIVE_SESSIONS,
    MAX_BODY_BYTES,
    ROUTE_TABLE,
    TOKEN,
)
from control_api.operations import TAG_SERVER, Operation, Route, register

log = logging.getLogger(__name__)

_AIOHTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def _from_aiohttp(request: web.Request, exc: web.HTTPException) -> ApiError:
    if exc.status == 404:
        return not_found("path", f"no route {request.method} {request.path[:200]}")
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
        response = web.json_response(error_body(_from_aiohttp(request, exc)), status=exc.status)
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


async def healthz(request: web.Request) -> web.Response:
    containers = []
    live = request.app.get(LIVE_SESSIONS)
    sessions = live if live is not None else request.app[EXECUTION].sessions
    load_problems = dict(sessions.load_problems) if sessions is not None else {}
    problems: list[dict[str, object]] = []
    reasons: list[str] = []  # why degraded, in words
    runtimes = request.app[EXECUTION].runtimes
    typescript_missing = runtimes.typescript_missing if runtimes.typescript is None else None
    for name, store in request.app[CONTAINERS]:
        snapshot = await asyncio.to_thread(store.read)
        session_problems, missing = await asyncio.to_thread(
            health_problems, snapshot, load_problems, typescript_missing
        )
        for problem in session_problems:
            problems.append({"container": name, **problem})
            reasons.append(
                f"{name}/{problem['service']} hook {problem['hook']}: exec session "
                f"{problem['exec_id']!r} cannot serve: {problem['problem']}"
            )
        reasons += missing
        error = store.error
        if isinstance(error, StoreUnavailable):
            reasons.append(f"{name}: {error}; version {snapshot.version} is still enforced")
        elif error is not None:
            reasons.append(
                f"{store.path.name} is invalid; version {snapshot.version} is still enforced: "
                + "; ".join(map(str, error.problems))
            )
        containers.append(
            {
                "id": name,
                "file": store.path.name,
                "file_version": snapshot.version,
                "etag": snapshot.etag,
                "error": None if error is None else [str(p) for p in error.problems],
            }
        )
    events = request.app.get(EVENTS)
    events_error = None if events is None else await _events_error(events)
    if events_error is not None:
        reasons.append(f"events are not recorded: {events_error}")
    data: dict[str, object] = {
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "containers": containers,
        "exec_sessions": {
            "workers": sessions.status() if sessions is not None else [],
            "problems": problems,
        },
    }
    if events is not None:
        data["events"] = {
            "store": events.store.location,
            "recording": events.recording,
            "written": events.written,
            "dropped": events.dropped,
            "error": events_error,
            "recovered": events.recovered,
            "last_recovery": events.last_recovery,
        }
    return ok("OK", data)


async def _events_error(events: EventRecorder) -> str | None:
    """Why events are not being recorded (the writer's own word), or, in a process that only
    reads the store, why it cannot be read."""
    if events.recording:
        return events.error
    try:
        await asyncio.to_thread(events.store.probe)
    except events.store.errors as exc:
        return f"events store {events.store.location} cannot be read: {exc}"
    return None


HEALTH = Route("GET", "/healthz", healthz, Operation(
    "getHealth", TAG_SERVER, "Health", schemas.Health, "OK", errors=(), container=False,
))  # fmt: skip
# Every route, in the document's order; each module keeps the operations of its own handlers.
API_ROUTES = (
    *hooks_routes.ROUTES,
    *apply_routes.ROUTES,
    *events_routes.ROUTES,
    *capture_routes.ROUTES,
    *debug_routes.ROUTES,
    *protocol_routes.ROUTES,
    HEALTH,
    *openapi.ROUTES,
    *metrics.ROUTES,
    *ui_routes.ROUTES,
)

DRY_RUN_IDLE_S = 60.0


async def _close(sessions: SessionPool) -> None:
    sessions.close()


@dataclass(frozen=True)
class ApiSettings:
    """How one control API serves: who may call it and what it may do. The proxy builds it from
    its options (so the API reads requests as the proxy does), `proxy-hooks api` from its flags."""

    token: str = ""
    allow_inline_scripts: bool = False
    api_hosts: tuple[str, ...] = ()  # Host names allowed besides the listen address and loopback
    listen_host: str | None = None  # the name the API was asked to listen on
    encoded_slashes: EncodedSlashes = "reject"  # the proxy's hooks_encoded_slashes


def make_app(
    containers: Containers,
    settings: ApiSettings = ApiSettings(),
    events: EventRecorder | None = None,
    live_sessions: SessionPool | None = None,
) -> web.Application:
    """`live_sessions`: the proxy's exec sessions, when the API runs inside the proxy."""
    app = web.Application(
        middlewares=[metrics.count_requests, envelope_middleware, access_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONTAINERS] = containers
    app[TOKEN] = settings.token
    app[HOST_POLICY] = HostPolicy.build(settings.listen_host, settings.api_hosts)
    app[ALLOW_INLINE] = settings.allow_inline_scripts
    app[ENCODED_SLASHES] = settings.encoded_slashes
    # The proxy's own (hooks_tsx) when the API runs inside it.
    runtimes = live_sessions.runtimes if live_sessions is not None else Runtimes.detect()
    env = minimal_env()
    user = live_sessions.user if live_sessions is not None else None  # hooks_script_user
    dry_run_sessions = SessionPool(runtimes, env, idle_s=DRY_RUN_IDLE_S, user=user)
    remote = RemoteHooks()
    app[EXECUTION] = Execution(runtimes, env, dry_run_sessions, remote)
    app.on_cleanup.append(lambda _: _close(dry_run_sessions))
    app.on_cleanup.append(lambda _: remote.close())
    if live_sessions is not None:
        app[LIVE_SESSIONS] = live_sessions
    if events is not None:
        app[EVENTS] = events
    app[ROUTE_TABLE] = API_ROUTES
    register(app, API_ROUTES)
    metrics.install(app)
    return app
