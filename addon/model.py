"""The container hooks file as pydantic models: the one definition of the schema.

Validation, the file on disk, the API's request bodies and (later) the OpenAPI document all
come from these classes. Field-level rules live here; rules that need the whole file
(a group must be defined, ids unique) live in `addon.validation`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

RESERVED_SERVICES = frozenset({"logs", "proxy", "workspaces"})
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ANY_METHOD = "*"
MAX_MATCH_PATH = 257
TIMEOUT_MIN_MS = 1
TIMEOUT_MAX_MS = 30_000
DEFAULT_TIMEOUT_MS = 5_000
# ULIDs, lowercase Crockford base32 (no i, l, o, u), as the seed requires.
HOOK_ID_RE = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}\Z")  # \Z: "$" would let a final newline in
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def reserved_service(name: str) -> str:
    """How every message names a reject-listed service: a container may declare one (its flows
    pass untouched), but it never has hooks."""
    return f"service {name!r} is reject-listed ({', '.join(sorted(RESERVED_SERVICES))})"


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"must be 1-63 characters of letters, digits, '_', '.', '-', starting with a letter "
            f"or digit, got {value!r}"
        )
    return value


Name = Annotated[str, AfterValidator(_name)]


def _hook_id(value: str) -> str:
    if not HOOK_ID_RE.match(value):
        raise ValueError(
            f"must be a 26-character lowercase Crockford base32 ULID, got {value!r}; "
            "leave it out and the server mints one"
        )
    return value


HookId = Annotated[str, AfterValidator(_hook_id)]


def _one_method(value: object) -> str:
    if not isinstance(value, str) or value.upper() not in (ANY_METHOD, *METHODS):
        raise ValueError(f"must be '*' or one of {', '.join(METHODS)}, got {value!r}")
    return value.upper()


def _methods(value: object) -> str | list[str]:
    """Accept one method or a list, in any case; store them upper-case, without repeats."""
    if isinstance(value, list):
        if not value:
            raise ValueError("must name at least one method")
        return list(dict.fromkeys(_one_method(item) for item in value))
    if isinstance(value, str):
        return _one_method(value)
    raise ValueError(f"must be a method name or a list of them, got {type(value).__name__}")


def _match_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/', got {value!r}")
    if len(value) > MAX_MATCH_PATH:
        raise ValueError(f"must be at most {MAX_MATCH_PATH} characters, got {len(value)}")
    if "?" in value or "#" in value:
        raise ValueError("is matched against the path without the query: drop '?…' and '#…'")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    seen: set[str] = set()
    for name in value:
        if not _HEADER_NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in seen:
            raise ValueError(f"header {name!r} is listed twice (names are case-insensitive)")
        seen.add(name.lower())
    return value


HeaderMap = Annotated[dict[str, str], AfterValidator(_headers)]


def _script_path(value: str) -> str:
    """Lexical confinement; the store also resolves symlinks against the real folder."""
    if not value.strip("/"):
        raise ValueError("must name a script file inside the scripts folder, e.g. /hooks/x.py")
    if "\x00" in value or "\\" in value:
        raise ValueError("must not contain NUL bytes or backslashes")
    if ".." in value.split("/"):
        raise ValueError(f"must stay inside the scripts folder: '..' is not allowed, got {value!r}")
    return value


def _timeout(value: int) -> int:
    if not TIMEOUT_MIN_MS <= value <= TIMEOUT_MAX_MS:
        raise ValueError(f"must be {TIMEOUT_MIN_MS}-{TIMEOUT_MAX_MS} ms, got {value}")
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"must be an IP address or CIDR block like 10.0.0.0/8, got {value!r}") from None
    return value


def _host_glob(value: str) -> str:
    if not value or any(ch.isspace() or ch in "/@" for ch in value):
        raise ValueError(f"must be a host or host:port glob like '*.demo.test', got {value!r}")
    return value


def _upstream(value: str) -> str:
    if not re.match(r"^https?://[A-Za-z0-9.\-_~%\[\]:]+/?\Z", value):
        raise ValueError(f"must be an http(s) origin like http://127.0.0.1:9001, got {value!r}")
    return value.rstrip("/")


def _non_empty_unique(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("must not repeat a name")
    return value


TimeoutMs = Annotated[
    int,
    Field(strict=True, json_schema_extra={"minimum": TIMEOUT_MIN_MS, "maximum": TIMEOUT_MAX_MS}),
    AfterValidator(_timeout),
]
Position = Annotated[int, Field(strict=True, ge=0)]
# ISO 8601 UTC with milliseconds and a Z, as clients in any language parse it.
Timestamp = Annotated[
    dt.datetime,
    PlainSerializer(
        lambda v: v.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        return_type=str,
        when_used="json",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    """Which requests a hook is for: all of method, path and headers must match."""

    method: Annotated[str | list[str], BeforeValidator(_methods)]
    path: Annotated[str, AfterValidator(_match_path)]
    headers: HeaderMap = Field(default_factory=dict)


ScriptPath = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_script_path)]


class ScriptRef(_Model):
    """The script a hook runs; `path` resolves inside the container's scripts folder."""

    path: ScriptPath
    subdomain: Annotated[str, StringConstraints(max_length=253)] | None = None
    execId: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = (
        None  # the seed spells it so
    )


class AppliesTo(_Model):
    groups: Annotated[list[Name], Field(min_length=1), AfterValidator(_non_empty_unique)]


def _header_names(value: list[str]) -> list[str]:
    bad = [name for name in value if not _HEADER_NAME_RE.match(name)]
    if bad:
        raise ValueError(f"not header names: {', '.join(map(repr, bad))}")
    return sorted({name.lower() for name in value})


DEFAULT_REDACT = ("authorization", "cookie")


class Capture(_Model):
    """`"capture": {"redact": [...]}`: keep each run's exchange, with these request headers'
    values replaced (default: Authorization and Cookie; `[]` keeps them)."""

    redact: Annotated[list[str], AfterValidator(_header_names)] = Field(
        default_factory=lambda: list(DEFAULT_REDACT)
    )


class HookSpec(_Model):
    """What a client writes about a hook; everything else is set by the server."""

    match: Match
    script: ScriptRef
    timeout: TimeoutMs = DEFAULT_TIMEOUT_MS
    applies_to: AppliesTo | None = None
    enabled: Annotated[bool, Field(strict=True)] = True
    failure_mode: Literal["closed", "open"] = "closed"
    mode: Literal["sync", "async"] = "sync"
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    # true, or {"redact": [...]}: store each run's request and response beside its event.
    capture: Annotated[bool, Field(strict=True)] | Capture | None = None

    def capture_spec(self) -> Capture | None:
        if self.capture is True:
            return Capture()
        return self.capture or None


class Hook(HookSpec):
    """A hook as stored. `id` is absent only in a hand-written file, until the store mints it."""

    id: HookId | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class Service(_Model):
    hosts: list[Annotated[str, AfterValidator(_host_glob)]] = Field(default_factory=list)
    upstream: Annotated[str, AfterValidator(_upstream)] | None = None


class Group(_Model):
    """A client is in the group if any one rule holds: address, proxy-auth user, or headers."""

    clients: list[Annotated[str, AfterValidator(_cidr)]] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    headers: HeaderMap = Field(default_factory=dict)


class HooksFile(_Model):
    """One container's hooks file. `file_version` is the ETag `file:v<N>`."""

    container: Name
    file_version: Annotated[int, Field(strict=True, ge=0)] = 0
    scripts_dir: Annotated[str, StringConstraints(min_length=1)] = "scripts"
    services: dict[Name, Service] = Field(default_factory=dict)
    groups: dict[Name, Group] = Field(default_factory=dict)
    hooks: dict[str, list[Hook]] = Field(default_factory=dict)


# --- request bodies of the control API: HookSpec plus what each verb lets a client echo ---


class HookCreate(HookSpec):
    """POST body: a new hook, appended or inserted at `position`."""

    position: Position | None = None


class HookReplace(HookSpec):
    """PATCH body and bulk item: the whole hook, as a GET showed it or as newly written.

    PATCH: an echoed `id` and `position` must be the hook's own. Bulk PUT: `id` keeps a hook's
    identity, list order gives positions. The timestamps may be echoed; the server sets them.
    """

    id: HookId | None = None
    position: Position | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class HookMove(_Model):
    position: Position


class HookList(_Model):
    """PUT body: a service's whole hook list, in evaluation order."""

    hooks: list[HookReplace]


def spec_fields(hook: HookSpec) -> dict[str, Any]:
    """The client-writable fields of any hook-like model, as set by its author."""
    return hook.model_dump(include=set(HookSpec.model_fields), exclude_unset=True)
