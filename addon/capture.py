"""Captured exchanges: what a hook with `"capture": true` keeps of each run's request and
response, and the HAR 1.2 export of them.

An exchange is stored beside its event (same row, same retention). Bodies are kept up to
`hooks_capture_body_max` bytes with a `truncated` flag; the request headers the hook's
`capture.redact` names (Authorization and Cookie unless it says otherwise) are stored as
`[redacted]`, so their values never reach the store, the API or a HAR file.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict

from addon.environments import redact as redact_text
from addon.environments import redact_bytes

if TYPE_CHECKING:  # events -> engine -> capture: the HAR side only reads events
    from addon.events import Event

DEFAULT_BODY_MAX = 256 * 1024
REDACTED = "[redacted]"


class Message(BaseModel):
    """One side of an exchange. `body` is the (kept part of the) body when it is UTF-8, else
    `body_base64`; `body_size` is the whole body's size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    headers: list[tuple[str, str]]
    body: str | None = None
    body_base64: str | None = None
    body_size: int = 0
    truncated: bool = False
    http_version: str = "HTTP/1.1"


class CapturedRequest(Message):
    method: str
    url: str


class CapturedResponse(Message):
    status: int
    reason: str = ""


class Exchange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request: CapturedRequest
    response: CapturedResponse | None = None  # none when the flow ended without one
    redacted: list[str] = []  # the request headers whose values were replaced


def message_fields(
    headers: Iterable[tuple[str, str]],
    content: bytes | None,
    body_max: int,
    redact: Sequence[str] = (),
    secrets: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The common fields of a Message: headers (redacted as asked), the body within the bound.
    `secrets`: the hook's environment's `from_env` values, masked wherever they appear (a script
    that puts an API key in a header or a body must not leave it in the store or a HAR)."""
    hidden = set(redact)
    kept_headers = [
        (name, REDACTED if name.lower() in hidden else redact_text(value, secrets) or "")
        for name, value in headers
    ]
    content = content or b""
    # Masked before the cut, so a secret across the bound leaves none of its bytes behind.
    kept = (redact_bytes(content, secrets) if secrets else content)[:body_max]
    fields: dict[str, Any] = {
        "headers": kept_headers,
        "body_size": len(content),
        "truncated": len(kept) < len(content),
    }
    text = _text(kept, fields["truncated"])
    if text is not None:
        fields["body"] = text
    else:
        fields["body_base64"] = base64.b64encode(kept).decode("ascii")
    return fields


def _text(kept: bytes, truncated: bool) -> str | None:
    """The body as text when it is UTF-8; a cut may split a character, whose first bytes
    (at most 3) are then dropped rather than the whole body turned to base64."""
    for cut in range(4 if truncated else 1):
        try:
            return kept[: len(kept) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


# --- HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) ---


def _har_headers(headers: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers]


def _content_type(headers: list[tuple[str, str]]) -> str:
    return next((value for name, value in headers if name.lower() == "content-type"), "")


def _har_request(request: CapturedRequest) -> dict[str, Any]:
    query = urlsplit(request.url).query
    har: dict[str, Any] = {
        "method": request.method,
        "url": request.url,
        "httpVersion": request.http_version,
        "cookies": [],
        "headers": _har_headers(request.headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)],
        "headersSize": -1,
        "bodySize": request.body_size,
    }
    if request.body_size:
        post: dict[str, Any] = {"mimeType": _content_type(request.headers)}
        if request.body is not None:
            post["text"] = request.body
        else:  # HAR's postData has no encoding field: say so in its comment
            post["text"], post["comment"] = request.body_base64 or "", "text is base64 (a binary body)"
        if request.truncated:
            post["comment"] = f"{post.get('comment', '')} truncated: {request.body_size} bytes sent".strip()
        har["postData"] = post
    return har


def _har_response(response: CapturedResponse | None) -> dict[str, Any]:
    if response is None:
        return {"status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
                "content": {"size": 0, "mimeType": ""}, "redirectURL": "", "headersSize": -1,
                "bodySize": -1}  # fmt: skip
    content: dict[str, Any] = {"size": response.body_size, "mimeType": _content_type(response.headers)}
    if response.body is not None:
        content["text"] = response.body
    elif response.body_base64 is not None:
        content["text"], content["encoding"] = response.body_base64, "base64"
    if response.truncated:
        content["comment"] = f"truncated: the first bytes of {response.body_size} were captured"
    location = next((v for n, v in response.headers if n.lower() == "location"), "")
    return {
        "status": response.status,
        "statusText": response.reason,
        "httpVersion": response.http_version,
        "cookies": [],
        "headers": _har_headers(response.headers),
        "content": content,
        "redirectURL": location,
        "headersSize": -1,
        "bodySize": response.body_size,
    }


def _started(event: Event) -> str:
    """HAR wants ISO 8601 with a zone; ours end in Z (accepted by the schema's date-time)."""
    return dt.datetime.fromisoformat(event.ts.replace("Z", "+00:00")).isoformat(timespec="milliseconds")


def to_har(captured: Iterable[tuple[Event, Exchange]], creator_version: str) -> dict[str, Any]:
    """A HAR 1.2 log of captured exchanges, oldest first; each entry names its event and hook."""
    entries = []
    for event, exchange in captured:
        wait = event.duration_ms or 0
        entries.append(
            {
                "startedDateTime": _started(event),
                "time": wait,
                "request": _har_request(exchange.request),
                "response": _har_response(exchange.response),
                "cache": {},
                "timings": {"send": 0, "wait": wait, "receive": 0},
                "comment": f"event {event.id}: hook {event.hook_id} ({event.service}) {event.outcome}",
                "_proxyHooks": {"event": event.id, "hook": event.hook_id, "outcome": event.outcome},
            }
        )
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "proxy-hooks", "version": creator_version},
            "entries": entries,
        }
    }
