"""What happened: one event per hook run (and per config reload or rejected edit, and per note
posted from outside the proxy), as a model.

`Event` is the single definition of an event: the SQLite store keeps its JSON, the API returns it,
the SSE stream sends it. `EventQuery` is the single definition of the filters, `NoteCreate` of
what a client may post.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    field_validator,
)

from addon.capture import Exchange
from addon.changes import RunChanges
from addon.engine import HookRun
from addon.model import HookRef, Name
from addon.protocol import Outcome
from addon.store import new_hook_id as new_ulid

EventKind = Literal["run", "dry_run", "config_reload", "config_rejected", "note"]
EVENT_KINDS: tuple[EventKind, ...] = ("run", "dry_run", "config_reload", "config_rejected", "note")
# Kinds that are hook runs, and so have `changes` (a dry run's are what the run would have done).
RUN_KINDS: tuple[EventKind, ...] = ("run", "dry_run")
MAX_NOTE_MESSAGE = 4000
MAX_NOTE_DATA_BYTES = 16 * 1024
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
DEFAULT_RUNS = 20
OUTCOMES: tuple[Outcome, ...] = (
    "continued",
    "modified",
    "responded",
    "blocked",
    "failed",
    "timeout",
    "observed",
)


def iso_utc(moment: dt.datetime) -> str:
    """Fixed-width ISO 8601 UTC with milliseconds, so strings sort as times do."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso_utc(dt.datetime.now(dt.UTC))


def default_instance() -> str:
    """Which process recorded an event, when hooks_instance does not say: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_ulid)
    ts: str = Field(default_factory=now_iso)
    kind: EventKind = "run"
    container: str
    service: str | None = None
    hook_id: str | None = None
    hook_name: str | None = None
    hook_version: int | None = None  # runs: the version of the hook that ran
    position: int | None = None
    phase: Literal["request", "response"] | None = None
    mode: str | None = None
    method: str | None = None
    host: str | None = None
    path: str | None = None
    client: str | None = None
    groups: list[str] = Field(default_factory=list)
    outcome: Outcome | None = None
    blocked: bool = False
    reason: str | None = None
    status: int | None = None
    exit_code: int | None = None
    duration_ms: float | None = None
    script: str | None = None
    runtime: str | None = None
    error: str | None = None
    stderr: str | None = None
    file_version: int | None = None
    changes: RunChanges | None = None  # runs: what the answer did to the exchange (null: nothing)
    cached: bool = False  # runs: the verdict of an earlier run, reused (no script ran)
    message: str | None = None  # notes
    data: dict[str, Any] | None = None  # notes
    instance: str | None = None  # the proxy (or API) that recorded it: hooks_instance, or host:pid
    # A captured exchange travels with its event to the store (its own column), never in the
    # event's JSON: events stay small to list and stream.
    _exchange: Exchange | None = PrivateAttr(default=None)

    @classmethod
    def from_run(cls, run: HookRun, instance: str | None = None) -> Event:
        # Built on the event loop for every run. pydantic-core validates a plain dict faster
        # than `model_construct` fills one in Python (its per-field and default machinery
        # costs twice as much), and the record is checked on the way.
        fields = {name: getattr(run, name) for name in _RUN_FIELDS}
        fields["blocked"] = run.blocked
        fields["instance"] = instance
        return cls.model_validate(fields)._with_exchange(run.exchange)

    def _with_exchange(self, exchange: Exchange | None) -> Event:
        self._exchange = exchange
        return self


# The Event fields a HookRun has (the rest: the id, the kind, and what only other kinds carry).
_RUN_FIELDS = tuple(name for name in Event.model_fields if name in HookRun.__dataclass_fields__)


def query_bool(value: object) -> object:
    """A query string's true/false (also 1/0), any case; ValueError for anything else."""
    if isinstance(value, str):
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise ValueError(f"must be true or false, got {value!r}")
    return value


QueryBool = Annotated[bool, BeforeValidator(query_bool), Field(strict=False)]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class RunFilters(BaseModel):
    """The filters on runs that the events list and a hook's run history share (one parser)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: list[Outcome] = Field(default_factory=list)
    changed: QueryBool | None = Field(
        None, description="runs whose answer changed the exchange (true) or did not (false)"
    )


class RunsQuery(RunFilters):
    """The filters of GET …/hooks/{service}/{hookId}/runs: the hook's `last` runs."""

    last: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_RUNS


class EventQuery(RunFilters):
    """The filters of GET …/events (and its stream); `since <= ts < until`."""

    service: str | None = None
    hookId: str | None = None  # the API's spelling
    instance: str | None = None  # the events one proxy recorded (its hooks_instance)
    kind: list[EventKind] = Field(default_factory=list)
    blocked: QueryBool | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: str | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        try:
            return _aware(value).astimezone(dt.UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            raise ValueError("must be a time between years 1 and 9999 in UTC") from None

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]{1,18}", value):
            raise ValueError("must be a next_cursor value from a previous page")
        return value


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_NOTE_DATA_BYTES:
        raise ValueError(
            f"must be at most {MAX_NOTE_DATA_BYTES} bytes as JSON, got {size}; keep large payloads "
            "elsewhere and put a link here"
        )
    return value


class NoteCreate(BaseModel):
    """POST …/proxy/events: a note from outside the proxy (a deploy marker, a finding), recorded
    beside the runs as an event of kind `note`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NOTE_MESSAGE)]
    service: Name | None = Field(None, description="a service of the container the note is about")
    hookId: HookRef | None = Field(
        None, description="a hook the note is about, by id or name (its service is found; both are kept)"
    )
    data: Annotated[dict[str, Any], AfterValidator(_small_json)] | None = Field(
        None, description=f"any JSON object, at most {MAX_NOTE_DATA_BYTES} bytes as compact JSON"
    )
