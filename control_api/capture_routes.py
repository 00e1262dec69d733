"""Captured exchanges, under `/api/v1/containers/{id}/proxy`: one event's exchange, and the
captured exchanges matching the `/events` filters as a HAR 1.2 file."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from addon.capture import to_har
from control_api.envelope import not_found, ok
from control_api.events_routes import BASE, read_store
from control_api.events_routes import _events as events_of
from control_api.events_routes import _query as event_query
from control_api.hooks_routes import load_container


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
    query = event_query(request)
    events = events_of(request)
    captured = await read_store(events, events.store.captured, snapshot.container, query)
    return web.json_response(
        to_har(captured, _version()),
        headers={"Content-Disposition": f'attachment; filename="{snapshot.container}-events.har"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(BASE + "/events/{eventId}/exchange", event_exchange)
    app.router.add_get(BASE + "/events.har", events_har)
