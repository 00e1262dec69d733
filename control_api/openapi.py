"""The OpenAPI 3.1 document, generated: paths from the operation table below, schemas from the
pydantic models (request bodies from `addon.model`, answers from `control_api.schemas`).

A test checks that every route the app registers is in this table, and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from addon.dry_run import DryRunRequest
from addon.events import EventQuery
from addon.explain import MatchQuery
from addon.model import HookCreate, HookList, HookMove, HookReplace
from control_api import schemas
from control_api.events_routes import STREAM_FIXED

CONTAINER = "/api/v1/containers/{id}"
HOOKS = CONTAINER + "/proxy/hooks"
TITLES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    422: "Validation Error",
    428: "Precondition Required",
    503: "Service Unavailable",
}
WRITE_ERRORS = (404, 428, 412, 422, 413, 409)
# What the door (control_api.access) can answer to any request, and to one with a body.
DOOR_ERRORS = (421, 403, 401)
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
DESCRIPTIONS = {
    421: "Misdirected Request: the Host header is not an address of this API (see --api-host)",
    403: "Forbidden: a cross-origin request (Origin, Sec-Fetch-Site)",
    401: "Unauthorized: a token is set and the request does not carry it",
    415: "Unsupported Media Type: a request body must be application/json",
}


@dataclass(frozen=True)
class Operation:
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
    media: tuple[str, ...] = ()  # a success that is not JSON: its content types (a string body)


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/healthz"): Operation("Health", schemas.Health, "OK", errors=(), container=False),
    ("GET", "/api/v1/openapi.json"): Operation("This document", None, "", errors=(), container=False),
    ("GET", "/"): Operation(
        "Links to the dashboard and the API (a browser, Accept: text/html, is redirected to /ui/)",
        schemas.Index,
        "proxy-hooks control API",
        errors=(),
        container=False,
    ),
    ("GET", "/ui/{asset}"): Operation(
        "The dashboard's files (index.html when empty); no token needed, they hold no data",
        None,
        "",
        container=False,
        media=("text/html", "text/javascript", "text/css", "text/plain"),
    ),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics (text exposition format)",
        None,
        "",
        errors=(),
        container=False,
        media=("text/plain",),
    ),
    ("GET", "/api/v1/containers"): Operation(
        "List the containers served",
        schemas.ContainerList,
        "Containers listed successfully",
        errors=(),
        container=False,
    ),
    ("GET", HOOKS): Operation(
        "List all hooks for a container", schemas.ContainerHooks, "Proxy hooks listed successfully"
    ),
    ("GET", HOOKS + "/{service}"): Operation(
        "List hooks for a service", schemas.ServiceHooks, "Service hooks listed successfully"
    ),
    ("POST", HOOKS + "/{service}"): Operation(
        "Append or insert a new hook",
        schemas.OneHook,
        "Hook created successfully",
        201,
        HookCreate,
        errors=WRITE_ERRORS,
        if_match=True,
    ),
    ("PUT", HOOKS + "/{service}"): Operation(
        "Replace a service's hooks in one write",
        schemas.ServiceHooks,
        "Service hooks replaced",
        body=HookList,
        errors=WRITE_ERRORS,
        if_match=True,
    ),
    ("DELETE", HOOKS + "/{service}"): Operation(
        "Clear all hooks for a service",
        schemas.Cleared,
        "Service hooks cleared",
        errors=(404, 428, 412, 409),
        if_match=True,
    ),
    ("GET", HOOKS + "/{service}/{hookId}"): Operation(
        "Get a single hook", schemas.OneHook, "Hook retrieved successfully"
    ),
    ("PATCH", HOOKS + "/{service}/{hookId}"): Operation(
        "Replace a hook in place",
        schemas.OneHook,
        "Hook updated successfully",
        body=HookReplace,
        errors=WRITE_ERRORS,
        if_match=True,
    ),
    ("DELETE", HOOKS + "/{service}/{hookId}"): Operation(
        "Remove a single hook",
        schemas.Versioned,
        "Hook removed successfully",
        errors=(404, 428, 412, 409),
        if_match=True,
    ),
    ("PATCH", HOOKS + "/{service}/{hookId}/position"): Operation(
        "Move a hook to a new position",
        schemas.OneHook,
        "Hook moved successfully",
        body=HookMove,
        errors=WRITE_ERRORS,
        if_match=True,
    ),
    ("POST", HOOKS + "/{service}/{hookId}/test"): Operation(
        "Dry-run a hook on a sample request",
        schemas.DryRunResult,
        "Hook tested",
        body=DryRunRequest,
        errors=(404, 422, 403, 413),
    ),
    ("GET", HOOKS + "/{service}/{hookId}/runs"): Operation(
        "One hook's run history (also after it was deleted)",
        schemas.HookRuns,
        "Hook runs listed successfully",
        errors=(404, 422, 503),
        extra_params=(
            {"name": "last", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {
                "name": "outcome",
                "in": "query",
                "schema": {"type": "array", "items": {"type": "string"}},
                "explode": True,
            },
        ),
    ),
    ("POST", CONTAINER + "/proxy/match"): Operation(
        "Explain which hook a request would run, and why not the others",
        schemas.Explanation,
        "Match explained",
        body=MatchQuery,
        errors=(404, 422),
    ),
    ("GET", CONTAINER + "/proxy/events"): Operation(
        "Hook events, newest first",
        schemas.EventsPage,
        "Events listed successfully",
        query=EventQuery,
        errors=(404, 422, 503),
    ),
    ("GET", CONTAINER + "/proxy/events/stream"): Operation(
        "New events as Server-Sent Events (resume with Last-Event-ID)",
        None,
        "",
        query=EventQuery,
        query_exclude=STREAM_FIXED,
        errors=(404, 422, 503),
        stream=True,
        extra_params=({"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},),
    ),
    ("GET", CONTAINER + "/proxy/events/{eventId}/exchange"): Operation(
        "One event's captured exchange (its hook sets capture)",
        schemas.CapturedExchange,
        "Exchange retrieved successfully",
        errors=(404, 503),
    ),
    ("GET", CONTAINER + "/proxy/events.har"): Operation(
        "Captured exchanges matching the /events filters, as a HAR 1.2 file (oldest first)",
        None,
        "",
        query=EventQuery,
        errors=(404, 422, 503),
        media=("application/json",),
    ),
    ("GET", CONTAINER + "/proxy/stats"): Operation(
        "Aggregated hook activity",
        schemas.Stats,
        "Stats computed successfully",
        errors=(404, 422, 503),
        extra_params=({"name": "period", "in": "query", "schema": {"enum": ["24h", "7d", "30d"]}},),
    ),
    ("GET", CONTAINER + "/proxy/catalog"): Operation(
        "What will really run, per service, in evaluation order",
        schemas.Catalog,
        "Catalog resolved successfully",
    ),
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _query_params(model: type[BaseModel], exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    return [
        {
            "name": name,
            "in": "query",
            "schema": prop,
            **({"explode": True} if prop.get("type") == "array" else {}),
        }
        for name, prop in schema.get("properties", {}).items()
        if name not in exclude
    ]


def _operation(method: str, path: str, op: Operation) -> dict[str, Any]:
    etag = (
        {"ETag": {"description": "the container's file:v<N>", "schema": {"type": "string"}}}
        if op.container
        else {}
    )
    query = _query_params(op.query, op.query_exclude) if op.query else []
    params = _path_params(path) + query + list(op.extra_params)
    if op.if_match:
        params.append({
            "name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"},
            "description": "file:v<N> (quoted or bare, weak or strong, or a list of them), or * for "
                           "whatever version is current; 428 without it, 412 when it names no current one",
        })  # fmt: skip
    if op.media:
        success = {
            "description": op.summary,
            "content": {media: {"schema": {}} for media in op.media},
        }
    elif op.stream:
        success = {"description": "text/event-stream", "headers": etag,
                   "content": {"text/event-stream": {"schema": {"type": "string"}}}}  # fmt: skip
    elif op.data is None:
        success = {
            "description": "OpenAPI document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    else:
        envelope = {
            "type": "object",
            "required": ["statusCode", "message", "data"],
            "properties": {
                "statusCode": {"const": op.status},
                "message": {"const": op.message},
                "data": _ref(op.data),
            },
        }
        success = {
            "description": op.message,
            "headers": etag,
            "content": {"application/json": {"schema": envelope}},
        }
    responses: dict[str, Any] = {str(op.status): success}
    door = (*DOOR_ERRORS, 415) if method in BODY_METHODS else DOOR_ERRORS
    for status in (*op.errors, *door):
        responses[str(status)] = {
            "description": DESCRIPTIONS.get(status, TITLES[status]),
            "headers": etag if status not in door else {},
            "content": {"application/json": {"schema": _ref(schemas.ErrorBody)}},
        }
    operation: dict[str, Any] = {"summary": op.summary, "parameters": params, "responses": responses}
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    return operation


def build_document() -> dict[str, Any]:
    models = (
        {schemas.ErrorBody}
        | {op.data for op in OPERATIONS.values() if op.data}
        | {op.body for op in OPERATIONS.values() if op.body}
    )
    _, definitions = models_json_schema(
        [
            (m, "serialization" if m.__module__ == schemas.__name__ else "validation")
            for m in sorted(models, key=lambda m: m.__name__)
        ],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "proxy-hooks control API",
            "version": "1",
            "description": "The Proxy Hooks API (container hooks, ETag file:v<N>), events, stats, debugging.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_document())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json)
