"""Events, run history, stats, the live stream and the catalog, under
`/api/v1/containers/{id}/proxy`. Same envelope and ETag rules as the hooks endpoints."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from addon import edits
from addon.catalog import resolve_catalog
from addon.event_recorder import EventRecorder
from addon.event_store import PERIODS
from addon.events import MAX_LIMIT, OUTCOMES, EventQuery
from addon.model import RESERVED_SERVICES
from addon.validation import Problem, check_model, in_order
from control_api.envelope import ApiError, not_found, ok
from control_api.hooks_routes import load_container
from control_api.keys import ETAG, EVENTS, LIVE_SESSIONS

T = TypeVar("T")

BASE = "/api/v1/containers/{id}/proxy"
LIST_PARAMS = {"outcome", "kind"}
# The stream pages itself with Last-Event-ID, so the list's paging parameters are not its own.
STREAM_FIXED = ("limit", "cursor")
_SEQ = re.compile(r"[0-9]{1,18}")
STREAM_BATCH = 500
STREAM_POLL_S = 1.0  # without a recorder in this process, streams look for new rows this often
HEARTBEAT_S = 15.0
DEFAULT_RUNS = 20


def _invalid_query(problems: list[Problem]) -> ApiError:
    return ApiError(422, "Invalid query", "VALIDATION_ERROR", problems)


def _events(request: web.Request) -> EventRecorder:
    events = request.app.get(EVENTS)
    if events is None:
        raise ApiError(503, "This process records no events (start it with an events store)", "NO_EVENTS")
    return events


def unavailable(events: EventRecorder, exc: BaseException) -> ApiError:
    return ApiError(
        503,
        f"The events store {events.store.path.name} cannot be read ({exc}). The proxy recording "
        "into it creates it anew (a corrupt file is moved aside); see /healthz",
        "EVENTS_UNAVAILABLE",
    )


async def read_store(events: EventRecorder, call: Callable[..., T], *args: Any) -> T:
    """A blocking read of the events store, off the loop; 503 in the envelope when the store
    is missing or unreadable."""
    try:
        return await asyncio.to_thread(call, *args)
    except (sqlite3.Error, OSError) as exc:
        raise unavailable(events, exc) from None


def _params(request: web.Request, allowed: set[str]) -> tuple[dict[str, Any], list[Problem]]:
    """Query parameters as a dict (repeatable ones as lists, the others given at most once),
    and what is wrong with their names: the values are checked next, and all reported at once."""
    data: dict[str, Any] = {}
    problems = []
    for name in sorted(set(request.query)):
        values = request.query.getall(name)
        if name not in allowed:
            problems.append(Problem(name, f"unknown parameter (allowed: {', '.join(sorted(allowed))})"))
        elif name in LIST_PARAMS:
            data[name] = [v for value in values for v in value.split(",") if v]
        elif len(values) > 1:
            problems.append(Problem(name, "given more than once; give it once"))
        else:
            data[name] = values[0]
    return data, problems


def _query(request: web.Request, **fixed: Any) -> EventQuery:
    data, problems = _params(request, set(EventQuery.model_fields) - set(fixed))
    query, more = check_model(EventQuery, {**data, **fixed})
    if problems or more or query is None:
        raise _invalid_query(in_order(problems + more))
    return query


async def list_events(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    query = _query(request)
    events = _events(request)
    page, next_cursor = await read_store(events, events.store.query, snapshot.container, query)
    listed = [event.model_dump(mode="json") for _, event in page]
    return ok("Events listed successfully", {"events": listed, "next_cursor": next_cursor})


async def hook_runs(request: web.Request) -> web.Response:
    """A hook's history, also after the hook (or its service) was deleted."""
    _, snapshot = await load_container(request)
    service, hook_id = request.match_info["service"], request.match_info["hookId"]
    if service in RESERVED_SERVICES:
        refused = edits.reserved(service)
        raise not_found(refused.field, str(refused))
    params, problems = _params(request, {"last", "outcome"})
    last = params.get("last", str(DEFAULT_RUNS))
    if not _SEQ.fullmatch(last) or not 1 <= int(last) <= MAX_LIMIT:
        problems.append(Problem("last", f"must be an integer 1-{MAX_LIMIT}, got {last!r}"))
    bad = [o for o in params.get("outcome", []) if o not in OUTCOMES]
    if bad:
        problems.append(Problem("outcome", f"must be among {', '.join(OUTCOMES)}, got {', '.join(bad)}"))
    if problems:
        raise _invalid_query(in_order(problems))
    events = _events(request)
    runs = await read_store(
        events, events.store.runs, snapshot.container, service, hook_id, int(last), params.get("outcome", [])
    )
    data = {"service": service, "hookId": hook_id, "runs": [r.model_dump(mode="json") for r in runs]}
    return ok("Hook runs listed successfully", data)


async def stats(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    params, problems = _params(request, {"period"})
    period = params.get("period", "7d")
    if period not in PERIODS:
        problems.append(Problem("period", f"must be one of {', '.join(PERIODS)}, got {period!r}"))
    if problems:
        raise _invalid_query(in_order(problems))
    events = _events(request)
    figures = await read_store(events, events.store.stats, snapshot.container, period)
    return ok("Stats computed successfully", {**figures, "dropped": events.dropped})


async def stream_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: each event recorded after the client connected (or after the
    `Last-Event-ID` it sends), in order, with the same filters as GET …/events."""
    _, snapshot = await load_container(request)
    query = _query(request, limit=STREAM_BATCH, cursor=None)
    events = _events(request)
    last_id = request.headers.get("Last-Event-ID", "").strip()
    if last_id and not _SEQ.fullmatch(last_id):
        raise _invalid_query([Problem("Last-Event-ID", "must be the id of an event this stream sent")])
    after = int(last_id) if last_id else await read_store(events, events.store.last_seq, snapshot.container)
    await read_store(events, events.store.probe)  # 503 now rather than a stream that ends at once
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "ETag": request[ETAG],
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    idle = 0.0
    while request.transport is not None and not request.transport.is_closing():
        try:
            rows, _ = await asyncio.to_thread(events.store.query, snapshot.container, query, after)
        except (sqlite3.Error, OSError) as exc:
            # The store went away mid-stream: say so and end; the client reconnects (retry:)
            # with its Last-Event-ID and gets a 503 until the store is back.
            await response.write(f": events store unavailable: {exc}\n\n".encode())
            break
        for seq, event in rows:
            await response.write(f"id: {seq}\ndata: {event.model_dump_json()}\n\n".encode())
            after = seq
        if len(rows) == STREAM_BATCH:
            continue  # a backlog: keep sending
        if rows:
            idle = 0.0
        elif idle >= HEARTBEAT_S:
            await response.write(b": keep-alive\n\n")  # also how a gone client is noticed
            idle = 0.0
        wait = STREAM_POLL_S if events.hub is None else HEARTBEAT_S
        started = asyncio.get_running_loop().time()
        if events.hub is None:
            await asyncio.sleep(wait)
        else:
            await events.hub.wait(wait)
        idle += asyncio.get_running_loop().time() - started
    return response


async def catalog(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    live = request.app.get(LIVE_SESSIONS)
    problems = dict(live.load_problems) if live is not None else None
    services = await asyncio.to_thread(resolve_catalog, snapshot, problems)
    data = {"services": services, "file_version": snapshot.version, "etag": snapshot.etag}
    return ok("Catalog resolved successfully", data)


def add_routes(app: web.Application) -> None:
    app.router.add_get(BASE + "/events", list_events)
    app.router.add_get(BASE + "/events/stream", stream_events)
    app.router.add_get(BASE + "/stats", stats)
    app.router.add_get(BASE + "/catalog", catalog)
    app.router.add_get(BASE + "/hooks/{service}/{hookId}/runs", hook_runs)
