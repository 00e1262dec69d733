"""Events (and notes posted from outside), run history, stats, the live stream and the catalog,
under `/api/v1/containers/{id}/proxy`. Same envelope and ETag rules as the hooks endpoints."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from addon import edits
from addon.catalog import CatalogQuery, filter_catalog, resolve_catalog
from addon.event_recorder import EventRecorder
from addon.event_stores import PERIODS
from addon.events import Event, EventQuery, NoteCreate, RunsQuery
from addon.model import RESERVED_SERVICES, Hook
from addon.store import Snapshot
from addon.validation import InvalidInput, Problem, check_model, in_order, parse_model
from control_api import schemas
from control_api.envelope import ApiError, not_found, ok
from control_api.hooks_routes import load_container, read_body
from control_api.keys import ETAG, EVENTS, LIVE_SESSIONS
from control_api.operations import TAG_DEBUGGING, TAG_EVENTS, Operation, Route

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

BASE = "/api/v1/containers/{id}/proxy"
LIST_PARAMS = {"outcome", "kind"}
# The stream pages itself with Last-Event-ID, so the list's paging parameters are not its own.
STREAM_FIXED = ("limit", "cursor")
_SEQ = re.compile(r"[0-9]{1,18}")
STREAM_BATCH = 500
STREAM_POLL_S = 1.0  # without a recorder in this process, streams look for new rows this often
HEARTBEAT_S = 15.0


def _invalid_query(problems: list[Problem]) -> ApiError:
    return ApiError(422, "Invalid query", "VALIDATION_ERROR", problems)


def events_of(request: web.Request) -> EventRecorder:
    events = request.app.get(EVENTS)
    if events is None:
        raise ApiError(503, "This process records no events (start it with an events store)", "NO_EVENTS")
    return events


def unavailable(events: EventRecorder, exc: BaseException) -> ApiError:
    return ApiError(
        503,
        f"The events store {events.store.name} cannot be read ({exc}). The proxy recording "
        "into it creates it anew (a corrupt file is moved aside; a database is reconnected to); "
        "see /healthz",
        "EVENTS_UNAVAILABLE",
    )


async def read_store(events: EventRecorder, call: Callable[..., T], *args: Any) -> T:
    """A blocking read of the events store, off the loop; 503 in the envelope when the store
    is missing or unreadable."""
    try:
        return await asyncio.to_thread(call, *args)
    except events.store.errors as exc:
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


def query_of(request: web.Request, model: type[M], **fixed: Any) -> M:
    data, problems = _params(request, set(model.model_fields) - set(fixed))
    query, more = check_model(model, {**data, **fixed})
    if problems or more or query is None:
        raise _invalid_query(in_order(problems + more))
    return query


async def list_events(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    query = query_of(request, EventQuery)
    events = events_of(request)
    page, next_cursor = await read_store(events, events.store.query, snapshot.container, query)
    listed = [event.model_dump(mode="json") for _, event in page]
    return ok("Events listed successfully", {"events": listed, "next_cursor": next_cursor})


async def hook_runs(request: web.Request) -> web.Response:
    """A hook's history, also after the hook (or its service) was deleted."""
    _, snapshot = await load_container(request)
    service = request.match_info["service"]
    if service in RESERVED_SERVICES:
        refused = edits.reserved(service)
        raise not_found(refused.field, str(refused))
    hook_id = edits.hook_id_of(snapshot.hooks_file, service, request.match_info["hookId"])
    query = query_of(request, RunsQuery)
    events = events_of(request)
    runs = await read_store(
        events,
        events.store.runs,
        snapshot.container,
        service,
        hook_id,
        query.last,
        query.outcome,
        query.changed,
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
    events = events_of(request)
    figures = await read_store(events, events.store.stats, snapshot.container, period)
    return ok("Stats computed successfully", {**figures, "dropped": events.dropped})


async def stream_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: each event recorded after the client connected (or after the
    `Last-Event-ID` it sends), in order, with the same filters as GET …/events."""
    _, snapshot = await load_container(request)
    query = query_of(request, EventQuery, limit=STREAM_BATCH, cursor=None)
    events = events_of(request)
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
    if request.method == "HEAD":
        # The headers only; a body written after them would be read as the next response on
        # the client's kept-alive connection.
        return response
    await response.write(b"retry: 2000\n\n")
    idle = 0.0
    while request.transport is not None and not request.transport.is_closing():
        try:
            rows, _ = await asyncio.to_thread(events.store.query, snapshot.container, query, after)
        except events.store.errors as exc:
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
        # This process's recorder wakes the stream at once; others' rows (a standalone API, or
        # a database many proxies write into) are looked for every STREAM_POLL_S.
        wait = HEARTBEAT_S if events.hub is not None and not events.store.shared else STREAM_POLL_S
        started = asyncio.get_running_loop().time()
        if events.hub is None:
            await asyncio.sleep(wait)
        else:
            await events.hub.wait(wait)
        idle += asyncio.get_running_loop().time() - started
    return response


async def catalog(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    query = query_of(request, CatalogQuery)
    if query.service is not None and query.service not in snapshot.hooks_file.services:
        raise _invalid_query([_unknown_service(snapshot, query.service)])
    live = request.app.get(LIVE_SESSIONS)
    problems = dict(live.load_problems) if live is not None else None
    services = await asyncio.to_thread(resolve_catalog, snapshot, problems)
    listed = filter_catalog(services, query)
    data = {"services": listed, "file_version": snapshot.version, "etag": snapshot.etag}
    return ok("Catalog resolved successfully", data)


def _unknown_service(snapshot: Snapshot, service: str) -> Problem:
    defined = ", ".join(sorted(snapshot.hooks_file.services)) or "none"
    reason = f"service {service!r} is not defined in container {snapshot.container!r} (defined: {defined})"
    return Problem("service", reason)


def _invalid_note(problems: list[Problem]) -> ApiError:
    return ApiError(422, "Invalid event", "VALIDATION_ERROR", problems)


def note_subject(snapshot: Snapshot, note: NoteCreate) -> tuple[str | None, Hook | None]:
    """The service and hook a note is about. Both must exist now (what the catalog can show); a
    hook's service is found when the note names the hook only, by id or name."""
    hooks_file = snapshot.hooks_file
    if note.service is not None and note.service not in hooks_file.services:
        raise _invalid_note([_unknown_service(snapshot, note.service)])
    if note.hookId is None:
        return note.service, None
    for service in [note.service] if note.service is not None else edits.hookable_services(hooks_file):
        try:
            return service, edits.find_hook(hooks_file, service, note.hookId)[1]
        except edits.NotFound:
            continue
    where = f"service {note.service!r}" if note.service is not None else f"container {snapshot.container!r}"
    reason = (
        f"no hook {note.hookId!r} in {where}, by id or name; GET "
        f"/api/v1/containers/{snapshot.container}/proxy/hooks lists them"
    )
    raise _invalid_note([Problem("hookId", reason)])


async def add_note(request: web.Request) -> web.Response:
    """Record a note: written before the answer (201 means stored), then streamed like a run."""
    _, snapshot = await load_container(request)
    events = events_of(request)
    raw = await read_body(request)
    try:
        note = parse_model(NoteCreate, raw)
    except InvalidInput as exc:
        raise _invalid_note(exc.problems) from None
    service, hook = note_subject(snapshot, note)
    event = Event(
        kind="note",
        container=snapshot.container,
        service=service,
        hook_id=hook.id if hook else None,
        hook_name=hook.name if hook else None,
        message=note.message,
        data=note.data,
        instance=events.instance,
    )
    await read_store(events, events.store.insert, [event])
    if events.hub is not None:
        events.hub.notify()  # wake this process's streams now (others poll)
    return ok("Event recorded", event.model_dump(mode="json"), 201)


ROUTES = (
    Route("GET", BASE + "/events", list_events, Operation(
        "listContainerProxyEvents", TAG_EVENTS, "Hook events, newest first",
        schemas.EventsPage, "Events listed successfully", query=EventQuery, errors=(404, 422, 503),
    )),
    Route("POST", BASE + "/events", add_note, Operation(
        "addContainerProxyEvent", TAG_EVENTS,
        "Record a note (a deploy marker, a finding from outside the proxy) as an event of kind note",
        Event, "Event recorded", 201, NoteCreate, errors=(404, 422, 413, 503),
    )),
    Route("GET", BASE + "/events/stream", stream_events, Operation(
        "streamContainerProxyEvents", TAG_EVENTS,
        "New events as Server-Sent Events (resume with Last-Event-ID)", None, "",
        query=EventQuery, query_exclude=STREAM_FIXED, errors=(404, 422, 503), stream=True,
        extra_params=({"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},),
    )),
    Route("GET", BASE + "/stats", stats, Operation(
        "getContainerProxyStats", TAG_EVENTS, "Aggregated hook activity",
        schemas.Stats, "Stats computed successfully", errors=(404, 422, 503),
        extra_params=({"name": "period", "in": "query", "schema": {"enum": list(PERIODS)}},),
    )),
    Route("GET", BASE + "/hooks/{service}/{hookId}/runs", hook_runs, Operation(
        "listContainerProxyHookRuns", TAG_EVENTS, "One hook's run history (also after it was deleted)",
        schemas.HookRuns, "Hook runs listed successfully", query=RunsQuery, errors=(404, 422, 503),
    )),
    Route("GET", BASE + "/catalog", catalog, Operation(
        "getContainerProxyCatalog", TAG_DEBUGGING, "What will really run, per service, in evaluation order",
        schemas.Catalog, "Catalog resolved successfully", query=CatalogQuery, errors=(404, 422),
    )),
)  # fmt: skip
