"""What the recorder and the API ask of an events store, whichever database holds it.

Two stores implement it: `SQLiteEventStore` (an embedded file, the default) and
`PostgresEventStore` (one database shared by many proxies). Every method is blocking: the
recorder calls the writes from its own thread and the API runs reads with `asyncio.to_thread`.

The writer's connection is the store's own business (`writer()` gives one, `insert`, `check` and
`prune` take it back); the recorder only keeps it and hands it back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from addon.capture import Exchange
from addon.events import Event, EventQuery

PERIODS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}


class EventStore(Protocol):
    # What a failure of this store raises (OSError among them): the recorder and the API catch these.
    errors: tuple[type[Exception], ...]
    # Whether a batch that could not be written waits in the queue for the store to come back
    # (a database server that restarts) rather than being dropped at once (a local file: a
    # failure there does not pass by itself).
    keeps_failed_batches: bool
    # Whether other processes (other proxies) write into it too: then a live reader cannot wait
    # for its own process's writer only, and looks for new rows every second.
    shared: bool

    @property
    def location(self) -> str:
        """Where the events are, for logs and answers (a database's password never shows)."""

    @property
    def name(self) -> str:
        """A short `location`, for messages."""

    # --- the writer (the recorder's thread) ---

    def create(self) -> None:
        """Create the store and its schema (or bring an older one up to it)."""

    def writer(self) -> Any:
        """A connection for the single writer thread to keep."""

    def close_writer(self, db: Any) -> None:
        """Close a writer connection; never raises."""

    def writer_current(self, db: Any, identity: tuple[int, int] | None) -> bool:
        """Whether the writer's connection still reaches the store it opened (`identity`)."""

    def identity(self) -> tuple[int, int] | None:
        """Which store is at the location now (a file's device and inode); None: none."""

    def is_corrupt(self, exc: BaseException) -> bool:
        """Whether `exc` says the store is damaged beyond use (then it is moved aside)."""

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failed write may succeed later as it is (a lost connection)."""

    def move_aside(self) -> Path:
        """Keep a corrupt store under another name; returns where it is now."""

    def check(self, db: Any) -> None:
        """The writer's periodic check that the store still reads; raises `errors`."""

    def insert(self, events: Sequence[Event], db: Any = None) -> None:
        """Store events, in one transaction, in order (on the writer's connection, or its own)."""

    def prune(self, max_rows: int, max_age: dt.timedelta | None, db: Any = None) -> int:
        """Drop a chunk of the oldest rows beyond `max_rows` and older than `max_age`."""

    # --- reading (the API) ---

    def probe(self) -> None:
        """Read what every query reads first, as a reader would; raises `errors` or OSError."""

    def query(
        self, container: str, query: EventQuery, after: int | None = None
    ) -> tuple[list[tuple[int, Event]], str | None]:
        """Newest first, a page at a time; with `after` (a stream), oldest first from there."""

    def runs(
        self,
        container: str,
        service: str,
        hook_id: str,
        last: int,
        outcomes: Sequence[str],
        changed: bool | None = None,
    ) -> list[Event]: ...

    def exchange(self, container: str, event_id: str) -> tuple[Event, Exchange | None] | None: ...

    def captured(self, container: str, query: EventQuery) -> list[tuple[Event, Exchange]]: ...

    def last_seq(self, container: str) -> int: ...

    def count(self) -> int: ...

    def stats(self, container: str, period: str) -> dict[str, Any]: ...
