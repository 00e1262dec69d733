"""What happened: one event per hook run (and per config reload or rejected edit), as a model.

`Event` is the single definition of an event: the SQLite store keeps its JSON, the API returns it,
the SSE stream sends it. `EventQuery` is the single definition of the filters.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from addon.engine import HookRun
from addon.protocol import Outcome
from addon.store import new_hook_id as new_ulid

EventKind = Literal["run", "dry_run", "config_reload", "config_rejected"]
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
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


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_ulid)
    ts: str = Field(default_factory=now_iso)
    kind: EventKind = "run"
    container: str
    service: str | None = None
    hook_id: str | None = None
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

    @classmethod
    def from_run(cls, run: HookRun) -> Event:
        # Built on the event loop for every run. pydantic-core validates a plain dict faster
        # than `model_construct` fills one in Python (its per-field and default machinery
        # costs twice as much), and the record is checked on the way.
        return cls.model_validate(run.as_dict())


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class EventQuery(BaseModel):
    """The filters of GET …/events (and its stream); `since <= ts < until`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str | None = None
    hookId: str | None = None  # the API's spelling
    outcome: list[Outcome] = Field(default_factory=list)
    kind: list[EventKind] = Field(default_factory=list)
    blocked: Annotated[bool, Field(strict=False)] | None = None
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

    @field_validator("blocked", mode="before")
    @classmethod
    def _blocked(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lower() in ("true", "1"):
                return True
            if value.lower() in ("false", "0"):
                return False
            raise ValueError(f"must be true or false, got {value!r}")
        return value
