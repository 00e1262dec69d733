"""Recording never blocks a flow: runs go onto a bounded queue, one thread writes them in
batches, and what does not fit is dropped and counted.

The recorder also tells live readers (the SSE stream) that new events were stored; they read
them from the store, so a stream and a query never disagree on what happened or in what order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path

from addon.engine import HookRun
from addon.event_store import SQLiteEventStore
from addon.events import Event
from addon.validation import Problem

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 10_000
BATCH_MAX = 500
LINGER_S = 0.02
PRUNE_EVERY_S = 5.0
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_AGE_DAYS = 30
_STOP = object()


class EventHub:
    """Wakes live readers when events were stored. Lives on the event loop."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)


class EventRecorder:
    """Implements the addon's Recorder; owns the writer thread."""

    def __init__(
        self,
        store: SQLiteEventStore,
        queue_size: int = DEFAULT_QUEUE,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_age: dt.timedelta | None = dt.timedelta(days=DEFAULT_MAX_AGE_DAYS),
    ):
        self.store = store
        self.max_rows = max_rows
        self.max_age = max_age
        self.dropped = 0
        self.written = 0
        self.error: str | None = None
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._count_lock = threading.Lock()  # `add` is called from worker threads too
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None  # the writer thread's own connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self.hub: EventHub | None = None

    @property
    def recording(self) -> bool:
        return self._thread is not None

    # --- lifecycle (on the event loop) ---

    def start(self) -> bool:
        """Open the store and start writing. A bad file is a warning: the proxy keeps serving."""
        try:
            self.store.create()
        except (sqlite3.Error, OSError) as exc:
            self.error = f"events store {self.store.path} unusable: {exc}"
            log.warning("proxy-hooks: %s; hook runs will not be recorded", self.error)
            return False
        self._loop = asyncio.get_running_loop()
        self.hub = EventHub()
        self._thread = threading.Thread(target=self._write_loop, name="proxy-hooks-events", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued, then stop the writer."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._thread = None

    # --- recording (on the event loop; never blocks) ---

    def record(self, run: HookRun) -> None:
        self.add(Event.from_run(run))

    def add(self, event: Event) -> None:
        """Queue one event; thread-safe. What cannot be queued is counted, never waited for."""
        if self._thread is not None:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                pass
        with self._count_lock:
            self.dropped += 1

    def config_changed(
        self, container: str, kind: str, version: int | None, problems: list[Problem] | None
    ) -> None:
        """A hooks file took effect as a new version, or an edit to it was rejected."""
        if kind == "reload":
            self.add(Event(kind="config_reload", container=container, file_version=version))
        else:
            error = "; ".join(map(str, problems or []))
            self.add(Event(kind="config_rejected", container=container, error=error))

    # --- the writer thread ---

    def _write_loop(self) -> None:
        last_prune = 0.0
        stopping = False
        try:
            self._db = self.store.writer()
        except (sqlite3.Error, OSError) as exc:
            self._db = None
            log.warning("proxy-hooks: cannot open %s for writing: %s", self.store.path, exc)
        while not stopping:
            try:
                first = self._queue.get(timeout=PRUNE_EVERY_S)
            except queue.Empty:
                first = None
            batch: list[Event] = []
            for item in self._drain(first):
                if item is _STOP:
                    stopping = True
                else:
                    assert isinstance(item, Event)
                    batch.append(item)
            if batch:
                self._write(batch)
            if time.monotonic() - last_prune >= PRUNE_EVERY_S or stopping:
                self._prune()
                last_prune = time.monotonic()
        if self._db is not None:
            self._db.close()

    def _drain(self, first: object | None) -> list[object]:
        """The first item and what arrives within LINGER_S after it: fewer, larger transactions
        cost the proxy's CPU less than one per event."""
        items = [] if first is None else [first]
        deadline = time.monotonic() + LINGER_S
        while items and len(items) < BATCH_MAX and items[-1] is not _STOP:
            remaining = deadline - time.monotonic()
            try:
                items.append(
                    self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return items

    def _write(self, batch: list[Event]) -> None:
        try:
            self.store.insert(batch, self._db)
        except (sqlite3.Error, OSError) as exc:
            with self._count_lock:
                self.dropped += len(batch)
            if self.error is None:
                log.warning("proxy-hooks: cannot write events to %s: %s", self.store.path, exc)
            self.error = str(exc)
            return
        self.written += len(batch)
        self.error = None
        if self._loop is not None and self.hub is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self.hub.notify)

    def _prune(self) -> None:
        try:
            while self.store.prune(self.max_rows, self.max_age):
                pass
        except (sqlite3.Error, OSError) as exc:
            log.warning("proxy-hooks: cannot apply events retention: %s", exc)


def default_events_path() -> Path:
    return Path(".proxy-hooks") / "events.db"
