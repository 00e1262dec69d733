"""Captured exchanges, under `/api/v1/containers/{id}/proxy`: one event's exchange, and the
captured exchanges matching the `/events` filters as a HAR 1.2 file."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from addon.capture import to_har
from addon.events import EventQuery
from control_api import schemas
from control_api.envelope import not_found, ok
from control_api.events_routes import BASE, events_of, query_of, read_store
from control_api.hooks_routes import load_container
from control_api.operations import TAG_EVENTS, Operation, Route


def _version() -> str:
    try:
        return version("proxy-hooks")
    except PackageNotFoundError:  # a checkout run without installing
        return "0"


async def event_exchange(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    events = events_of(request)
    event_id = request.match_info["eventId"]
    found = await read_store(events, events.store.exchange, snapshot.container, event_id)
    if found is None:
        raise not_found("eventId", f"event {event_id!r} in container {snapshot.container!r}")
    event, exchange = found
    if exchange is None:
        raise not_found(
            "eventId",
            f'event {event_id!r} has no captured exchange: its hook does not set "capture" '
            "(or did not when it ran)",
        )
    data = {"event": event.model_dump(mode="json"), "exchange": exchange.model_dump(mode="json")}
    return ok("Exchange retrieved successfully", data)


async def events_har(request: web.Request) -> web.Response:
    """The newest captured exchanges matching the filters (`limit`, default 100), oldest first."""
    _, snapshot = await load_container(request)
    query = query_of(request, EventQuery)
    events = events_of(request)
    captured = await read_store(events, events.store.captured, snapshot.container, query)
    return web.json_response(
        to_har(captured, _version()),
        headers={"Content-Disposition": f'attachment; filename="{snapshot.container}-events.har"'},
    )


ROUTES = (
    Route("GET", BASE + "/events/{eventId}/exchange", event_exchange, Operation(
        "getContainerProxyEventExchange", TAG_EVENTS,
        "One event's captured exchange (its hook sets capture)",
        schemas.CapturedExchange, "Exchange retrieved successfully", errors=(404, 503),
    )),
    Route("GET", BASE + "/events.har", events_har, Operation(
        "exportContainerProxyEventsHar", TAG_EVENTS,
        "Captured exchanges matching the /events filters, as a HAR 1.2 file (oldest first)",
        None, "", query=EventQuery, errors=(404, 422, 503), media=("application/json",),
    )),
)  # fmt: skip
