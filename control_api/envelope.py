"""The seed's response envelope: `{statusCode, message, data}` or `{statusCode, error, message}`.

Handlers raise `ApiError` and never build error bodies themselves; the middleware in
`control_api.app` renders every error, aiohttp's own included, through `error_body`.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web

from addon.validation import Problem

# The seed names 422 "Validation Error" rather than HTTP's "Unprocessable Entity".
_TITLES = {422: "Validation Error", 413: "Payload Too Large"}


def title(status: int) -> str:
    return _TITLES.get(status) or HTTPStatus(status).phrase


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        details: Sequence[Problem] | None = None,
        data: Any = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.details = details
        self.data = data  # what a refused batch would have done, item by item


def not_found(field: str, missing: str) -> ApiError:
    """The seed's 404, with `details` naming what is missing (`container 'x'`,
    `service 'y' (defined: a, b)`, `hook '…' in service 'y'`, `no route …`)."""
    return ApiError(404, "Resource not found", "NOT_FOUND", [Problem(field, missing)])


def error_body(error: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "statusCode": error.status,
        "error": title(error.status),
        "message": error.message,
    }
    if error.code:
        body["code"] = error.code
    if error.details is not None:
        body["details"] = [{"field": p.field, "reason": p.reason} for p in error.details]
    if error.data is not None:
        body["data"] = error.data
    return body


def ok(message: str, data: Any, status: int = 200) -> web.Response:
    return web.json_response({"statusCode": status, "message": message, "data": data}, status=status)
