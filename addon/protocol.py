"""Script protocol v1: the event a script reads on stdin and the answer it prints on stdout.

The answer is a pydantic model like the hooks file, so a script that prints something else
(a typo'd key, a status of 1000) fails with the same kind of field-path message.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from addon.validation import problems_from

PROTOCOL_VERSION = 1
Outcome = Literal["continued", "modified", "responded", "blocked", "failed", "timeout", "observed"]
Phase = Literal["request", "response"]


class _Answer(BaseModel):
    # Strict: a script that prints "block": "no" must fail, not be read as true.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


JsonBody = str | dict[str, Any] | list[Any] | None


class HeaderEdit(_Answer):
    set: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class RequestChange(_Answer):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] | None = None
    path: Annotated[str, Field(pattern=r"^/")] | None = None
    headers: HeaderEdit | None = None
    body: JsonBody = None
    body_base64: str | None = None


class ResponseSpec(_Answer):
    """A response to send (request phase) or the changes to make to one (response phase)."""

    status: Annotated[int, Field(ge=100, le=599, strict=True)] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: JsonBody = None
    body_base64: str | None = None


class ScriptAnswer(_Answer):
    request: RequestChange | None = None
    response: ResponseSpec | None = None
    block: bool = False
    reason: str | None = None
    intercept_response: bool = False


class BadAnswer(ValueError):
    pass


def parse_answer(stdout: bytes) -> ScriptAnswer:
    """Empty output means "carry on unchanged"; anything else must be one answer object."""
    text = stdout.strip()
    if not text:
        return ScriptAnswer()
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise BadAnswer(f"output is not JSON: {_excerpt(stdout)}") from None
    return parse_answer_object(data)


def parse_answer_object(data: Any) -> ScriptAnswer:
    """An answer already decoded from JSON (an exec session's return value); None: carry on."""
    if data is None:
        return ScriptAnswer()
    if not isinstance(data, dict):
        raise BadAnswer(f"output must be a JSON object, got {type(data).__name__}")
    try:
        return ScriptAnswer.model_validate(data)
    except ValidationError as exc:
        raise BadAnswer("; ".join(map(str, problems_from(exc, ScriptAnswer)))) from None


def body_bytes(body: JsonBody, body_base64: str | None) -> bytes | None:
    """The bytes of an answer's body: text as UTF-8, JSON values encoded, or base64."""
    if body_base64 is not None:
        try:
            return base64.b64decode(body_base64, validate=True)
        except ValueError:
            raise BadAnswer("body_base64 is not valid base64") from None
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def body_fields(content: bytes | None) -> dict[str, str | None]:
    """A message body for the event: text when it is UTF-8, else base64."""
    if content is None:
        return {"body": None, "body_base64": None}
    try:
        return {"body": content.decode("utf-8"), "body_base64": None}
    except UnicodeDecodeError:
        return {"body": None, "body_base64": base64.b64encode(content).decode()}


def _excerpt(raw: bytes, limit: int = 120) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
