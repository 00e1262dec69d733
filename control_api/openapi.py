"""The OpenAPI 3.1 document, generated: paths from the routes the app registers (each route
module's `ROUTES`, see `control_api.operations`), schemas from the pydantic models (request
bodies from `addon.model`, answers from `control_api.schemas`).

A test checks that every route aiohttp serves, HEAD included, is in the document with a unique
`operationId`, and the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from control_api import schemas
from control_api.keys import ROUTE_TABLE
from control_api.operations import TAG_SERVER, Operation, Route, list_query_param

DOCUMENT = "/api/v1/openapi.json"
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
# What the door (control_api.access) can answer to any request, and to one with a body.
DOOR_ERRORS = (421, 403, 401)
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
DESCRIPTIONS = {
    421: "Misdirected Request: the Host header is not an address of this API (see --api-host)",
    403: "Forbidden: a cross-origin request (Origin, Sec-Fetch-Site)",
    401: "Unauthorized: a token is set and the request does not carry it",
    415: "Unsupported Media Type: a request body must be application/json",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _query_params(model: type[BaseModel], exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    return [
        list_query_param(name, prop["items"])
        if prop.get("type") == "array"
        else {"name": name, "in": "query", "schema": prop}
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
    operation: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag.name],
        "summary": op.summary,
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    return operation


def _head(get: dict[str, Any]) -> dict[str, Any]:
    """HEAD, served wherever GET is: the same statuses and headers, no body."""
    responses = {
        status: {key: value for key, value in response.items() if key != "content"}
        for status, response in get["responses"].items()
    }
    return {
        **get,
        "operationId": get["operationId"] + "Head",
        "summary": f"{get['summary']} (HEAD: the GET's status and headers, no body)",
        "responses": responses,
    }


def _models(routes: Sequence[Route]) -> dict[str, Any]:
    ops = [route.operation for route in routes]
    # What the API answers is described as it is serialized, what it takes as it is validated (by
    # role, not by module: a model in both roles would get two schemas, `-Input` and `-Output`).
    answers = {schemas.ErrorBody} | {op.data for op in ops if op.data}
    bodies = {op.body for op in ops if op.body}
    _, definitions = models_json_schema(
        [(m, "serialization") for m in sorted(answers, key=lambda m: m.__name__)]
        + [(m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    found: dict[str, Any] = definitions.get("$defs", {})
    return found


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route.method, route.path, route.operation)
        methods = paths.setdefault(route.path, {})
        methods[route.method.lower()] = operation
        if route.method == "GET":
            methods["head"] = _head(operation)
    tags = {route.operation.tag.name: route.operation.tag for route in routes}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "proxy-hooks control API",
            "version": "1",
            "description": "The Proxy Hooks API (container hooks, ETag file:v<N>), events, stats, debugging.",
        },
        "tags": [{"name": tag.name, "description": tag.description} for tag in tags.values()],
        "paths": paths,
        "components": {
            "schemas": _models(routes),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


async def openapi_json(request: web.Request) -> web.Response:
    routes = request.app[ROUTE_TABLE]
    return web.json_response(build_document(routes))


ROUTES = (
    Route("GET", DOCUMENT, openapi_json, Operation(
        "getOpenApiDocument", TAG_SERVER, "This document", None, "", errors=(), container=False,
    )),
)  # fmt: skip
