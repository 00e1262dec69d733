"""Script protocol v1: the event a script reads on stdin and the answer it prints on stdout.

The answer is a pydantic model like the hooks file, so a script that prints something else
(a typo'd key, a status of 1000) fails with the same kind of field-path message.

An answer is untrusted input: a hook that echoes part of a request lets the *client* shape it.
So it is parsed with a depth bound (`MAX_ANSWER_DEPTH`), every header name must be an RFC 9110
token and every header value free of line breaks, NUL and other control characters, a path is
one printable ASCII request-target, and the framing headers (`content-length`,
`transfer-encoding`) stay the proxy's. What breaks a rule is refused, never repaired: the run
fails with the field path and the reason, and the hook's failure mode decides the flow.

`ScriptEvent` (a TypedDict: type-checked where `addon.flows` builds it, free at run time) and
`ScriptAnswer` are the protocol's one definition; `addon.protocol_schema` turns both into the JSON
Schemas of `GET /api/v1/protocol`. The character rules below are written once, as character
classes, and used both by the validators and (as `*_SCHEMA`) by the JSON Schema of the answer.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict on 3.12+ only

from addon.validation import MAX_JSON_DEPTH, TooDeep, loads_bounded, nested_deeper_than, problems_from

PROTOCOL_VERSION: Final = 1
# How deep an answer may nest, the answer object itself being level 1: the bound on all JSON from
# outside (a JSON body of 60 levels is still fine).
MAX_ANSWER_DEPTH = MAX_JSON_DEPTH
TOO_DEEP = f"answer nested deeper than {MAX_ANSWER_DEPTH} levels"
Outcome = Literal["continued", "modified", "responded", "blocked", "failed", "timeout", "observed"]
Phase = Literal["request", "response"]


class _Answer(BaseModel):
    # Strict: a script that prints "block": "no" must fail, not be read as true.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


JsonBody = str | dict[str, Any] | list[Any] | None

# RFC 9110 5.1: a field name is a token.
_TOKEN_CHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(f"[{_TOKEN_CHARS}]+")
# RFC 9110 5.5: a field value is visible characters, SP, HTAB and obs-text (here: any non-ASCII
# character, sent as UTF-8). Lone surrogates are refused too: they cannot be encoded (or, with
# surrogateescape, would become raw bytes).
_BAD_VALUE_CHARS = r"\x00-\x08\x0a-\x1f\x7f\ud800-\udfff"
_BAD_IN_VALUE = re.compile(f"[{_BAD_VALUE_CHARS}]")
# Framing is the proxy's: a script that sets these could make one message read as two.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
_PATH_CHARS = r"\x21-\x7e"
_PATH = re.compile(f"/[{_PATH_CHARS}]*")
# Canonical base64 (RFC 4648 4, padded), what `base64.b64decode(validate=True)` decodes.
_BASE64_CHARS = "A-Za-z0-9+/"
_BASE64 = re.compile(f"(?:[{_BASE64_CHARS}]{{4}})*(?:[{_BASE64_CHARS}]{{2}}==|[{_BASE64_CHARS}]{{3}}=)?")


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# The same rules in JSON Schema. Each forbids *finding* a character outside its class rather than
# anchoring a whole-string pattern: `$` means "end, or before a final newline" in Python's regexes
# (and so in Python validators) but "end" in ECMA-262's, and a rule must read the same in both.
HEADER_NAME_SCHEMA: dict[str, Any] = {
    "minLength": 1,
    "not": {
        "anyOf": [
            {"pattern": f"[^{_TOKEN_CHARS}]"},
            {"pattern": f"^(?:{'|'.join(_any_case(h) for h in sorted(FRAMING_HEADERS))})$"},
        ]
    },
}
HEADER_VALUE_SCHEMA: dict[str, Any] = {"type": "string", "not": {"pattern": f"[{_BAD_VALUE_CHARS}]"}}
PATH_SCHEMA: dict[str, Any] = {"pattern": "^/", "not": {"pattern": f"[^{_PATH_CHARS}]"}}
BASE64_SCHEMA: dict[str, Any] = {
    "pattern": f"^{_BASE64.pattern}$",
    "not": {"pattern": f"[^{_BASE64_CHARS}=]"},
}


def _character(char: str) -> str:
    if char in "\r\n":
        return "a line break"
    if char == "\0":
        return "a NUL character"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X}, not valid Unicode)"
    return f"a control character (0x{ord(char):02x})"


def header_name_problem(name: str) -> str | None:
    """Why `name` may not be set (or removed) by a script, or None."""
    if not _TOKEN.fullmatch(name):
        return (
            f"header {name!r} is not a valid header name (a name is 1 or more letters, digits or "
            "!#$%&'*+-.^_`|~)"
        )
    if name.lower() in FRAMING_HEADERS:
        return f"header {name!r} is the proxy's to set (it frames the message); change the body instead"
    return None


def header_value_problem(name: str, value: str) -> str | None:
    """Why `value` may not be sent as header `name`'s value, or None."""
    bad = _BAD_IN_VALUE.search(value)
    return None if bad is None else f"header {name!r} has {_character(bad.group())} in its value"


def _header_names(names: list[str]) -> list[str]:
    for name in names:
        if problem := header_name_problem(name):
            raise ValueError(problem)
    return names


def _headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if problem := header_name_problem(name) or header_value_problem(name, value):
            raise ValueError(problem)
    return headers


def path_problem(path: str) -> str | None:
    """Why `path` may not be a request's new path (the request-target on the wire), or None."""
    if _PATH.fullmatch(path):
        return None
    if not path.startswith("/"):
        return f"must start with '/', got {path[:60]!r}"
    bad = next(c for c in path if not "\x21" <= c <= "\x7e")
    what = "a space" if bad == " " else "a non-ASCII character" if bad > "\x7f" else _character(bad)
    return f"has {what}; a path is printable ASCII (percent-encode the rest)"


def _path(path: str) -> str:
    if problem := path_problem(path):
        raise ValueError(problem)
    return path


def _base64(value: str) -> str:
    if not _BASE64.fullmatch(value):
        raise ValueError("is not valid base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)")
    return value


Headers = Annotated[
    dict[str, str],
    AfterValidator(_headers),
    Field(
        json_schema_extra={"propertyNames": HEADER_NAME_SCHEMA, "additionalProperties": HEADER_VALUE_SCHEMA}
    ),
]
Base64 = Annotated[str, AfterValidator(_base64), Field(json_schema_extra=BASE64_SCHEMA)]


class HeaderEdit(_Answer):
    set: Headers = Field(default_factory=dict)
    remove: Annotated[
        list[str], AfterValidator(_header_names), Field(json_schema_extra={"items": HEADER_NAME_SCHEMA})
    ] = Field(default_factory=list)


class RequestChange(_Answer):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] | None = None
    path: Annotated[str, AfterValidator(_path), Field(json_schema_extra=PATH_SCHEMA)] | None = None
    headers: HeaderEdit | None = None
    body: JsonBody = None
    body_base64: Base64 | None = None


class ResponseSpec(_Answer):
    """A response to send (request phase) or the changes to make to one (response phase). Which
    statuses are allowed where depends on the phase and the upstream's status (the protocol's
    `rules`).
    """

    status: Annotated[int, Field(ge=100, le=599, strict=True)] | None = None  # the rest: status_problem
    headers: Headers = Field(default_factory=dict)
    body: JsonBody = None
    body_base64: Base64 | None = None


class ScriptAnswer(_Answer):
    request: RequestChange | None = None
    response: ResponseSpec | None = None
    block: bool = False
    reason: str | None = None
    intercept_response: bool = False


class BadAnswer(ValueError):
    pass


# Statuses whose responses cannot have content (RFC 9110 6.4.1): a body sent after one would be
# read by the client as the start of the next response.
NO_CONTENT_STATUSES = frozenset({204, 304})


def status_problem(status: int | None, upstream: int | None, body_size: int) -> str | None:
    """Why a script may not answer with `status` (and a body of `body_size` bytes), or None. The
    message starts with the field it is about. The rules:

    - A response the proxy sends itself (request phase, `upstream` None): status 200-599 (an
      unset status is 200). 1xx is never a whole answer: 100 would leave the client waiting, 101
      would claim a protocol switch nobody performs.
    - A response being changed (response phase, `upstream` its status): an unset status, or the
      upstream's own, keeps it whatever it is (a 101 or 304 the upstream sent); any other must be
      200-599.
    - Either way, a final status of 204 or 304 comes without a body (`body_size` counts the
      answer's, or the upstream's that stays): the client reads none, and would take those bytes
      for the start of the next response. (A response to HEAD has none either; that one is not
      the answer's mistake, and `addon.flows` sends its headers only.)
    """
    final = status if status is not None else (upstream or 200)
    if status is not None and status != upstream and not 200 <= status <= 599:
        sent = "a response the proxy sends" if upstream is None else "a changed status"
        return f"response.status: status {status} is not allowed for {sent} (200-599)"
    if final in NO_CONTENT_STATUSES and body_size:
        return f'response.body: status {final} cannot have a body (got {body_size} bytes; set "body": "")'
    return None


NO_ANSWER = ScriptAnswer()  # empty output, or a handle that returned None: carry on


def parse_answer(stdout: bytes) -> ScriptAnswer:
    """Empty output means "carry on unchanged"; anything else must be one answer object."""
    text = stdout.strip()
    if not text:
        return NO_ANSWER
    try:
        data = loads_bounded(text, MAX_ANSWER_DEPTH)
    except TooDeep:
        raise BadAnswer(TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError):
        raise BadAnswer(f"output is not JSON: {_excerpt(stdout)}") from None
    return _validated(data)


def parse_answer_object(data: Any) -> ScriptAnswer:
    """An answer already decoded from JSON (an exec session's return value); None: carry on."""
    if data is None:
        return NO_ANSWER
    if nested_deeper_than(data, MAX_ANSWER_DEPTH):
        raise BadAnswer(TOO_DEEP)
    return _validated(data)


def _validated(data: Any) -> ScriptAnswer:
    if data is None:
        return NO_ANSWER
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


# --- the event a script reads (stdin, an exec session's `handle(event)`, a remote hook's POST) ---
# Extra keys forbidden: the schema tells script authors exactly what they get.
_EVENT_CONFIG = ConfigDict(extra="forbid")


@with_config(_EVENT_CONFIG)
class BodyFields(TypedDict):
    body: str | None  # the body as text, when it is UTF-8
    body_base64: str | None  # else the body in base64


@with_config(_EVENT_CONFIG)
class EventBodyFields(BodyFields):
    body_truncated: bool  # the body went on past hooks_event_body_max: these are its first bytes


@with_config(_EVENT_CONFIG)
class EventScript(TypedDict):
    path: str
    subdomain: str | None
    execId: str | None


@with_config(_EVENT_CONFIG)
class EventHook(TypedDict):
    id: str
    position: int
    script: EventScript


@with_config(_EVENT_CONFIG)
class EventClient(TypedDict):
    address: str
    user: str | None  # the proxy-auth user
    groups: list[str]  # the container's groups the client is in


Header = tuple[str, str]  # [name, value], in order, repeated names repeated


@with_config(_EVENT_CONFIG)
class EventRequest(EventBodyFields):
    method: str
    url: str
    host: str
    port: int
    path: str  # with the query, as sent upstream
    headers: list[Header]


@with_config(_EVENT_CONFIG)
class EventResponse(EventBodyFields):
    status: int
    headers: list[Header]


@with_config(_EVENT_CONFIG)
class ScriptEvent(TypedDict):
    """Protocol v1's event: what a script reads on stdin."""

    version: Literal[1]
    phase: Phase
    container: str
    service: str
    hook: EventHook
    client: EventClient
    request: EventRequest
    response: EventResponse | None  # the upstream's, in the response phase


def body_fields(content: bytes | None) -> BodyFields:
    """A message body for the event: text when it is UTF-8, else base64."""
    if content is None:
        return {"body": None, "body_base64": None}
    try:
        return {"body": content.decode("utf-8"), "body_base64": None}
    except UnicodeDecodeError:
        return {"body": None, "body_base64": base64.b64encode(content).decode()}


DEFAULT_EVENT_BODY_MAX = 1024 * 1024


def event_body_fields(content: bytes | None, limit: int = DEFAULT_EVENT_BODY_MAX) -> EventBodyFields:
    """A message body for a hook's event: its first `limit` bytes, as `body_fields` gives them
    (a UTF-8 character cut at the limit is left out whole, so text stays text), and whether
    the body went on past them. The message itself is not touched: the upstream (or the
    client) still gets all of it."""
    truncated = content is not None and len(content) > limit
    if content is not None and truncated:
        content = content[:limit]
        try:
            content.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":  # only the last character was cut
                content = content[: exc.start]
    fields = body_fields(content)
    return {"body": fields["body"], "body_base64": fields["body_base64"], "body_truncated": truncated}


def _excerpt(raw: bytes, limit: int = 120) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
