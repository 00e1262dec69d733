"""Recording never blocks a flow: runs go onto a bounded queue, one thread writes them in
batches, and what does not fit is dropped and counted.

Queuing is an append to a deque (the writer is woken only when the queue was empty); the writer
then lets a batch gather for `LINGER_S` and writes it in one transaction: on a busy proxy an
event costs an append, its row and its share of one commit, not a thread wake-up each.

The writer heals: before each batch, and every CHECK_EVERY_S when idle, it checks that the file
at the store's path is still the one it opened and still reads as a database. A deleted or
replaced file is reopened (created anew); a corrupt one is moved aside
(`events.db.corrupt-<time>`) and created anew; a store that cannot be opened at all is retried.
Meanwhile `error` says why (the API's /healthz shows it) and runs are dropped and counted. A
PostgreSQL store is a server that comes back: a batch it could not take waits at the head of the
queue and the writer reconnects by itself; only what does not fit the queue is dropped.

The recorder also tells live readers (the SSE stream) that new events were stored; they read
them from the store, so a stream and a query never disagree on what happened or in what order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from collections import deque
from typing import Any

from addon.engine import HookRun
from addon.event_stores import EventStore
from addon.events import Event, default_instance
from addon.validation import Problem

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 10_000
BATCH_MAX = 500
LINGER_S = 0.05
PRUNE_EVERY_S = 5.0
CHECK_EVERY_S = 1.0
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
        store: EventStore,
        queue_size: int = DEFAULT_QUEUE,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_age: dt.timedelta | None = dt.timedelta(days=DEFAULT_MAX_AGE_DAYS),
        instance: str | None = None,
    ):
        self.store = store
        self.instance = instance or default_instance()  # stamped on every event recorded here
        self.max_rows = max_rows
        self.max_age = max_age
        self.dropped = 0
        self.written = 0
        self.error: str | None = None
        self.recovered = 0  # corrupt, deleted or replaced files reopened
        self.last_recovery: str | None = None
        self._identity: tuple[int, int] | None = None  # the file the writer has open
        self.queue_size = queue_size
        self._queue: deque[object] = deque()
        self._wake = threading.Event()  # set when the queue was empty and is not any more
        self._count_lock = threading.Lock()  # `add` is called from worker threads too
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._db: Any = None  # the writer thread's own connection (the store's kind)
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.hub: EventHub | None = None

    @property
    def recording(self) -> bool:
        return self._thread is not None

    # --- lifecycle (on the event loop) ---

    def start(self) -> bool:
        """Start writing; False when the store cannot be used now. A bad store is a warning:
        the proxy keeps serving and the writer keeps trying (and moves a corrupt file aside)."""
        self._loop = asyncio.get_running_loop()
        self.hub = EventHub()
        self._thread = threading.Thread(target=self._write_loop, name="proxy-hooks-events", daemon=True)
        self._opened = threading.Event()
        self._stopping = threading.Event()
        self._thread.start()
        self._opened.wait(10)  # the first open, so that start-up logs say whether it worked
        return self.error is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.append(_STOP)  # past the bound: the stop is never dropped
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self._thread = None

    # --- recording (on the event loop; never blocks) ---

    def record(self, run: HookRun) -> None:
        self.add(Event.from_run(run, self.instance))

    def add(self, event: Event) -> None:
        """Queue one event; thread-safe. What cannot be queued is counted, never waited for."""
        if self._thread is not None and len(self._queue) < self.queue_size:
            self._queue.append(event)  # deque appends are atomic, from any thread
            if not self._wake.is_set():
                self._wake.set()
            return
        with self._count_lock:
            self.dropped += 1

    def config_changed(
        self, container: str, kind: str, version: int | None, problems: list[Problem] | None
    ) -> None:
        """A hooks file took effect as a new version, or an edit to it was rejected."""
        if kind == "reload":
            self.add(
                Event(kind="config_reload", container=container, file_version=version, instance=self.instance)
            )
        else:
            error = "; ".join(map(str, problems or []))
            self.add(Event(kind="config_rejected", container=container, error=error, instance=self.instance))

    # --- the writer thread ---

    def _write_loop(self) -> None:
        self._open()
        self._opened.set()
        last_prune = last_check = time.monotonic()
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if batch:
                self._write(batch)
            now = time.monotonic()
            if now - last_check >= CHECK_EVERY_S:
                self._check()
                last_check = now
            if now - last_prune >= PRUNE_EVERY_S or stopping:
                self._prune()
                last_prune = now
        self._close()

    def _close(self) -> None:
        if self._db is not None:
            self.store.close_writer(self._db)
            self._db = None
            self._identity = None

    def _open(self) -> bool:
        """(Re)open the store for writing, creating it when missing and moving it aside when
        corrupt. On failure, `error` says why and the next check tries again."""
        self._close()
        try:
            try:
                self.store.create()
            except self.store.errors as exc:
                if not self.store.is_corrupt(exc):
                    raise
                self._set_aside(str(exc))
                self.store.create()
            self._db = self.store.writer()
            self._identity = self.store.identity()
        except self.store.errors as exc:
            self._close()
            self._fail(f"events store {self.store.location} unusable: {exc}")
            return False
        if self.error is not None:
            log.info("proxy-hooks: recording events to %s again", self.store.location)
        self.error = None
        return True

    def _set_aside(self, reason: str) -> None:
        self._close()
        moved = self.store.move_aside()
        self._recovered(f"{self.store.name} was corrupt ({reason}); moved it to {moved.name}")

    def _recovered(self, what: str) -> None:
        self.recovered += 1
        self.last_recovery = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {what}"
        log.warning("proxy-hooks: %s; recording into a new store", what)

    def _fail(self, error: str) -> None:
        if self.error != error:
            log.warning("proxy-hooks: %s; hook runs are not recorded until it is usable", error)
        self.error = error

    def _current(self) -> bool:
        """Make sure the writer holds the file at the store's path (a live connection to the
        database); reopen if it is another (or lost)."""
        if self._db is not None and self.store.writer_current(self._db, self._identity):
            return True
        if self._db is not None and self.store.identity() != self._identity:
            self._recovered(f"{self.store.name} was deleted or replaced")
        return self._open()

    def _check(self) -> None:
        if not self._current():
            return
        try:
            self.store.check(self._db)
        except self.store.errors as exc:
            if self.store.is_corrupt(exc):
                self._set_aside(str(exc))
                self._open()
            else:
                self._fail(f"events store {self.store.location} unusable: {exc}")

    def _next_batch(self) -> tuple[list[Event], bool]:
        """Up to BATCH_MAX queued events (after waiting up to CHECK_EVERY_S for the first, then
        LINGER_S for more to join it: fewer, larger transactions cost the proxy's CPU less
        than one per event), and whether the writer was asked to stop."""
        if not self._queue:
            self._wake.wait(CHECK_EVERY_S)
            if self._queue and self._queue[0] is not _STOP:
                time.sleep(LINGER_S)
        self._wake.clear()  # before taking: what is queued from now on sets it again
        batch: list[Event] = []
        while self._queue and len(batch) < BATCH_MAX:
            item = self._queue.popleft()
            if item is _STOP:
                return batch, True
            assert isinstance(item, Event)
            batch.append(item)
        return batch, False

    def _write(self, batch: list[Event]) -> None:
        keep = self.store.keeps_failed_batches  # when the store cannot even be opened
        for attempt in range(2):
            if not self._current():
                break
            try:
                self.store.insert(batch, self._db)
            except self.store.errors as exc:
                if attempt == 0 and self.store.is_corrupt(exc):
                    self._set_aside(str(exc))
                    continue  # once more, into the new file
                self._fail(f"cannot write events to {self.store.location}: {exc}")
                keep = self.store.keeps_failed_batches and self.store.is_transient(exc)
                break
            self.written += len(batch)
            self.error = None
            if self._loop is not None and self.hub is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    self._loop.call_soon_threadsafe(self.hub.notify)
            return
        if keep and not self._stopping.is_set():
            # A database that is away: the batch waits at the head of the queue (new runs
            # behind it, up to the bound; what does not fit is dropped and counted in `add`)
            # and is tried again once a check interval has passed.
            self._queue.extendleft(reversed(batch))
            self._stopping.wait(CHECK_EVERY_S)
            return
        with self._count_lock:
            self.dropped += len(batch)

    def _prune(self) -> None:
        if self._db is None:
            return  # nothing to prune in a store that cannot be opened
        try:
            while self.store.prune(self.max_rows, self.max_age, self._db):
                pass
        except self.store.errors as exc:
            log.warning("proxy-hooks: cannot apply events retention: %s", exc)
