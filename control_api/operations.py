"""Each route of the control API with what the OpenAPI document says about it, in one value.

A route module lists its `Route`s once; `register` adds them to the app and the document is
built from the same tuple (`control_api.openapi`), so the `operationId` a generated client names
its function after sits next to the handler it calls and cannot drift from it. A GET is served
for HEAD too (aiohttp's default), and the document says so with a `head` operation of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel


@dataclass(frozen=True)
class Tag:
    """An area of the API; a generated client puts each tag's operations in a module of its own
    (openapi-python-client: `api/proxy_hooks/…`, like the seed SDK's `client.api.proxyHooks`)."""

    name: str
    description: str


TAG_PROXY_HOOKS = Tag(
    "Proxy Hooks",
    "A container's hooks, per service, in evaluation order (first match wins): the seed's eight "
    "endpoints and the bulk PUT. Every write needs If-Match: file:v<N>.",
)
TAG_EVENTS = Tag(
    "Events",
    "The record of every hook run: events with filters, a hook's run history, stats, and a live "
    "Server-Sent Events stream.",
)
TAG_DEBUGGING = Tag(
    "Debugging",
    "Why a hook does (or does not) run: explain a request, dry-run a hook on a sample, and the "
    "catalog of what will really run.",
)
TAG_PROTOCOL = Tag(
    "Script Protocol",
    "What a hook script reads and may answer, machine-readable: the phases, and the JSON Schemas "
    "of the event and of the answer, generated from the definitions the proxy judges answers with.",
)
TAG_SERVER = Tag("Server", "This API itself: its health, the containers it serves, and this document.")

# The statuses a write can answer besides the door's, in the contract's order of checks (503:
# the database of a PostgreSQL store cannot be reached).
WRITE_ERRORS = (404, 428, 412, 422, 413, 409, 503)


@dataclass(frozen=True)
class Operation:
    """What the document says about one route. `data` is the success envelope's `data` model
    (None: not the envelope, e.g. this document itself)."""

    operation_id: str  # camelCase, the seed SDK's names for its eight endpoints
    tag: Tag
    summary: str
    data: type[BaseModel] | None
    message: str
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = (404,)
    if_match: bool = False
    container: bool = True  # carries the container's ETag header
    stream: bool = False
    extra_params: tuple[dict[str, Any], ...] = field(default=())
    query_exclude: tuple[str, ...] = ()  # fields of `query` this operation does not take
    media: tuple[str, ...] = ()  # a success that is not the JSON envelope: its content types


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation: Operation
    # aiohttp's own pattern when the path needs a regex the document cannot show
    # (`/ui/{asset:.*}`); the document keeps `path`.
    pattern: str | None = None


def register(app: web.Application, routes: Iterable[Route]) -> None:
    """Add the routes to the app; a GET is served for HEAD too."""
    for route in routes:
        path = route.pattern or route.path
        if route.method == "GET":
            app.router.add_get(path, route.handler)
        else:
            app.router.add_route(route.method, path, route.handler)


def list_query_param(name: str, items: dict[str, Any]) -> dict[str, Any]:
    """A query parameter that takes several values, as the events endpoints read them: the
    parameter repeated, or one comma-separated value, or both."""
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "array", "items": items},
        "explode": True,
        "description": f"one or more values: repeated ({name}=a&{name}=b) or comma-separated ({name}=a,b)",
    }
