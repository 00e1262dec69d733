"""Events in an embedded SQLite file (WAL): written in batches by one writer, read by many.

The default store (see base.py for what a store does). Each call opens what it needs: SQLite
connections are cheap and must not cross threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from addon.event_stores.sql import COLUMN_COUNT, COLUMNS, SqlEventReads, rows
from addon.events import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    container TEXT NOT NULL,
    service TEXT,
    hook_id TEXT,
    outcome TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    duration_ms REAL,
    data TEXT NOT NULL,
    client TEXT,
    changed INTEGER,
    exchange TEXT,
    cached INTEGER,
    instance TEXT
);
CREATE INDEX IF NOT EXISTS events_by_container ON events (container, seq);
CREATE INDEX IF NOT EXISTS events_by_hook ON events (container, hook_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (container, ts);
"""
# Columns added since the first schema, added to an older file when it is opened (`create`):
# `client` (the run's client address, for stats' recentClients) and `changed` (1/0 when a run's
# answer changed the exchange or not, NULL for other kinds and for runs recorded before `changes`
# existed: unknown, so they match neither changed=true nor changed=false).
# `cached` (1 when a run's verdict came from the hook's cache; NULL before it existed: not cached).
# `instance` (the proxy that recorded the event; NULL before it existed).
ADDED_COLUMNS = (
    ("client", "TEXT"), ("changed", "INTEGER"), ("exchange", "TEXT"), ("cached", "INTEGER"),
    ("instance", "TEXT"),
)  # fmt: skip


# SQLite's own words for "this file is not (or no longer) a database we can use".
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_SIDECARS = ("-wal", "-shm", "-journal")


def is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES
        or "malformed" in str(exc)
        or "not a database" in str(exc)
    )


class SQLiteEventStore(SqlEventReads):
    errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)
    keeps_failed_batches = False  # a file that fails now does not heal by waiting
    shared = False  # one proxy's file

    def __init__(self, path: Path):
        self.path = path

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def is_corrupt(self, exc: BaseException) -> bool:
        return is_corrupt(exc)

    def is_transient(self, exc: BaseException) -> bool:
        return False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """An existing store only: a reader must never create an empty file where the
        recorder's was deleted (it would have no schema, and hide the problem)."""
        uri = f"{self.path.absolute().as_uri()}?mode=rw"
        db = sqlite3.connect(uri, timeout=10, isolation_level=None, uri=True)
        try:
            db.execute("PRAGMA busy_timeout = 10000")
            yield db
        finally:
            db.close()

    def create(self) -> None:
        """Create the file and schema; raises sqlite3.Error/OSError when it cannot."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # The journal of a deleted database must not be replayed into the new one.
            for suffix in _SIDECARS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 10000")
            _use_wal(db)
            db.executescript(SCHEMA)
            migrate(db)
            db.execute("SELECT count(*) FROM events").fetchone()  # a corrupt file fails here
        finally:
            db.close()

    def identity(self) -> tuple[int, int] | None:
        """Which file is at the path now (device, inode); None when there is none. A writer
        compares it with the file it opened to notice a deleted or replaced store."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def move_aside(self) -> Path:
        """Rename a corrupt store (and its journal files) to `<name>.corrupt-<UTC time>`, so
        a new one can be created and the old one is kept for whoever wants to look at it."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        counter = 1
        while target.exists():
            counter += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{counter}")
        for suffix in ("", *_SIDECARS):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{target}{suffix}")
        return target

    # --- writing (the recorder's thread) ---

    def writer(self) -> sqlite3.Connection:
        """A connection for the single writer thread to keep: opening one per batch costs more
        than the batch itself."""
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        return db

    def close_writer(self, db: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            db.close()

    def writer_current(self, db: sqlite3.Connection, identity: tuple[int, int] | None) -> bool:
        return self.identity() == identity

    def check(self, db: sqlite3.Connection) -> None:
        self.probe()  # through a new connection: what a reader (the API) would see

    def insert(self, events: Sequence[Event], db: sqlite3.Connection | None = None) -> None:
        values = rows(events)
        with self._using(db) as db:
            db.execute("BEGIN")
            try:
                db.executemany(
                    f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join('?' * COLUMN_COUNT)})", values
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _use_wal(db: sqlite3.Connection, wait_s: float = 10.0) -> None:
    """Switch a file to WAL. Switching needs the file to itself, and SQLite answers "database is
    locked" at once, without its busy handler, when another connection (a proxy and an API
    opening one old file together) holds it: retry until `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def migrate(db: sqlite3.Connection) -> None:
    """Bring a file written by an older version up to this schema, once: the columns added since
    (`ADDED_COLUMNS`), with `client` filled from each stored event. Checked and done in one
    write transaction, so two processes opening the same old file add each column once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        present = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        for name, declaration in ADDED_COLUMNS:
            if name not in present:
                db.execute(f"ALTER TABLE events ADD COLUMN {name} {declaration}")
        if "client" not in present:
            _fill_clients(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _fill_clients(db: sqlite3.Connection) -> None:
    """`client` of the runs already stored, from their JSON: in SQL where SQLite has its JSON
    functions (built in since 3.38; ten times faster), else row by row."""
    try:
        db.execute("UPDATE events SET client = json_extract(data, '$.client') WHERE kind = 'run'")
    except sqlite3.OperationalError:  # no json_extract in this SQLite
        rows = db.execute("SELECT seq, data FROM events WHERE kind = 'run'").fetchall()
        db.executemany(
            "UPDATE events SET client = ? WHERE seq = ?",
            [(json.loads(data).get("client"), seq) for seq, data in rows],
        )
