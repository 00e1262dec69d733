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
MAX_HOOK_NAME = 128
# A hook's name sits in a URL path segment in place of its id: no '/', no spaces, no controls.
_HOOK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*\Z")
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


def _hook_name(value: str) -> str:
    if not 1 <= len(value) <= MAX_HOOK_NAME:
        raise ValueError(f"must be 1-{MAX_HOOK_NAME} characters long, got {len(value)}")
    if not _HOOK_NAME_RE.match(value):
        raise ValueError(
            "must be letters, digits, '_', '.', ':', '@', '-', starting with a letter or digit, "
            f"got {value!r}"
        )
    if HOOK_ID_RE.match(value):
        raise ValueError(
            f"must not look like a hook id (a 26-character ULID), got {value!r}: the API takes a "
            "name wherever it takes an id, so such a name could stand for another hook"
        )
    return value


# Unique within a container (`addon.validation.duplicate_names`); usable in place of the id.
HookName = Annotated[str, AfterValidator(_hook_name)]


def _hook_ref(value: str) -> str:
    if HOOK_ID_RE.match(value):
        return value
    try:
        return _hook_name(value)
    except ValueError as exc:
        raise ValueError(f"must be a hook's id (a 26-character ULID) or its name, which {exc}") from None


# A hook named in a body by its id or its name, as the API takes wherever it looks a hook up.
HookRef = Annotated[str, AfterValidator(_hook_ref)]


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


# --- environments: named sets of variables a hook's script gets (addon.environments) ---

DEFAULT_ENVIRONMENT = "default"
ENV_VAR_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}\Z")
MAX_ENV_VALUE = 32 * 1024
# What the minimal environment sets, or what changes how an interpreter, the dynamic linker or
# a shell starts: an environment that could set these could make a hook run other code than its
# script (NODE_OPTIONS=--require, LD_PRELOAD, BASH_ENV, PYTHONSTARTUP/PYTHONPATH) or change
# how every script reads its input (PATH, LANG).
RESERVED_ENV_VARS = frozenset(
    {"PATH", "HOME", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "GLOBIGNORE", "CDPATH", "LANG"}
)
RESERVED_ENV_PREFIXES = ("LD_", "DYLD_", "PYTHON", "NODE_", "BASH_", "LC_", "TSX_")


def _env_var_name(value: str) -> str:
    if not ENV_VAR_RE.match(value):
        raise ValueError(
            f"must be 1-128 upper-case letters, digits and '_', not starting with a digit, got {value!r}"
        )
    if value in RESERVED_ENV_VARS or value.startswith(RESERVED_ENV_PREFIXES):
        raise ValueError(
            f"{value!r} is reserved: scripts get the proxy's own PATH, locale and interpreter "
            f"settings (reserved: {', '.join(sorted(RESERVED_ENV_VARS))} and names starting with "
            f"{', '.join(RESERVED_ENV_PREFIXES)}); pick another name"
        )
    return value


def _env_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


EnvVarName = Annotated[str, AfterValidator(_env_var_name)]


class FromEnv(_Model):
    """A variable whose value is the proxy's own environment variable `from_env`, read when the
    file is loaded: the value lives only in the proxy's memory (never in the file, the API,
    events or logs: `"***"` where shown)."""

    from_env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


EnvValue = Annotated[str, StringConstraints(max_length=MAX_ENV_VALUE), AfterValidator(_env_value)] | FromEnv
Environment = dict[EnvVarName, EnvValue]


# --- cached verdicts (addon.verdict_cache) ---

CACHE_TTL_MAX_MS = 3_600_000
VARY_ELEMENTS = ("method", "path", "query", "client", "user")
DEFAULT_VARY = ("method", "path", "query")


def _vary_element(value: str) -> str:
    if value in VARY_ELEMENTS:
        return value
    kind, _, header = value.partition(":")
    if kind == "header" and _HEADER_NAME_RE.match(header):
        return f"header:{header.lower()}"
    raise ValueError(
        f"must be one of {', '.join(VARY_ELEMENTS)} or header:<name> (e.g. header:authorization), "
        f"got {value!r}"
    )


class HookCache(_Model):
    """Reuse the script's verdict for requests equal in everything `vary` names, for `ttl_ms`.
    `vary` is the author's statement of what the verdict depends on: what it leaves out, the
    cache treats as the same (see README, Cached verdicts)."""

    ttl_ms: Annotated[int, Field(strict=True, ge=1, le=CACHE_TTL_MAX_MS)]
    vary: Annotated[
        list[Annotated[str, AfterValidator(_vary_element)]],
        Field(max_length=32),
        AfterValidator(_non_empty_unique),
    ] = Field(default_factory=lambda: list(DEFAULT_VARY))


class HookSpec(_Model):
    """What a client writes about a hook; everything else is set by the server."""

    name: HookName | None = None
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
    # The name of one of the file's `environments` (None: "default", which may be undefined).
    environment: Name | None = None
    cache: HookCache | None = None  # used by sync hooks (an async hook's verdict is never applied)


class Hook(HookSpec):
    """A hook as stored. `id` is absent only in a hand-written file, until the store mints it."""

    id: HookId | None = None
    # Server-managed: 1 when written, +1 whenever the hook's content changes (`addon.versions`);
    # absent in a hand-written file, which reads as 1.
    version: Annotated[int, Field(strict=True, ge=1)] | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None

    @property
    def hook_version(self) -> int:
        return self.version or 1


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
    environments: dict[Name, Environment] = Field(default_factory=dict)


# --- request bodies of the control API: HookSpec plus what each verb lets a client echo ---


class HookCreate(HookSpec):
    """POST body: a new hook, appended or inserted at `position`."""

    position: Position | None = None


class HookReplace(HookSpec):
    """PATCH body and bulk item: the whole hook, as a GET showed it or as newly written.

    PATCH: an echoed `id` and `position` must be the hook's own. Bulk PUT: `id` keeps a hook's
    identity, list order gives positions. The timestamps and `version` may be echoed (so a GET
    or an exported file can be sent back as is); the server sets them and ignores these.
    """

    id: HookId | None = None
    position: Position | None = None
    version: int | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class HookMove(_Model):
    position: Position


class HookList(_Model):
    """PUT body: a service's whole hook list, in evaluation order."""

    hooks: list[HookReplace]


class ContainerApply(_Model):
    """PUT body for the whole container: each listed service's list, in evaluation order, in one
    write. Services left out keep their hooks, unless `prune` (then they end with none)."""

    hooks: dict[str, list[HookReplace]]
    prune: Annotated[bool, Field(strict=True)] = False


class UpsertItem(_Model):
    """One item of a bulk upsert: matched to a hook of `service` by `hook.id`, else by
    `hook.name`; no match adds it at the end of the service's list."""

    service: str
    hook: HookReplace


class BulkUpsert(_Model):
    """PATCH body for the whole container (seed 002's bulk upsert): all items or none."""

    items: Annotated[list[UpsertItem], Field(min_length=1)]


def spec_fields(hook: HookSpec) -> dict[str, Any]:
    """The client-writable fields of any hook-like model, as set by its author."""
    return hook.model_dump(include=set(HookSpec.model_fields), exclude_unset=True)
