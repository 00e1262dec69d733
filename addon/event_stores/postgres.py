"""Events in PostgreSQL: one database that many proxies record into and any API reads from.

The same `events` table and statements as the SQLite store (sql.py), so both answer alike. What
is PostgreSQL's own:

- Order across proxies. `seq` is a global bigserial; every batch takes one transaction-level
  advisory lock before it inserts, so sequence numbers are handed out in commit order and a
  reader that has seen `seq` N never sees a smaller one appear later (a stream that resumes
  "after N" misses nothing).
- Writes: COPY, one transaction per batch, on the writer thread's own connection (no pool in a
  proxy). Reads: a small psycopg-pool, opened on first use (the API).
- A database that is away is an error like any other (`errors`): the recorder keeps the batch
  queued (`keeps_failed_batches`) and reconnects by itself.
- The schema version sits in the shared `proxy_hooks_schema` table (component 'events').
- The password of the DSN never appears in `location`, logs or answers.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from addon.database_url import describe_dsn
from addon.event_stores.sql import COLUMNS, SqlEventReads, rows
from addon.events import Event

SCHEMA_VERSION = 1
COMPONENT = "events"
CONNECT_TIMEOUT_S = 5
POOL_SIZE = 4
# Advisory lock keys (any 64-bit numbers, the same in every process): one serialises the
# schema's creation between proxies starting together, one the batches (see "Order" above).
SCHEMA_LOCK = 0x70685F6576_01
INSERT_LOCK = 0x70685F6576_02
# `COLLATE "C"`: text compares and sorts byte-wise, as in SQLite, whatever the database's locale.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS proxy_hooks_schema (component text primary key, version integer not null);
CREATE TABLE IF NOT EXISTS events (
    seq bigserial PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    ts text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    container text COLLATE "C" NOT NULL,
    service text COLLATE "C",
    hook_id text COLLATE "C",
    outcome text COLLATE "C",
    blocked integer NOT NULL DEFAULT 0,
    duration_ms double precision,
    data text NOT NULL,
    client text COLLATE "C",
    changed integer,
    exchange text,
    cached integer,
    instance text COLLATE "C"
);
CREATE INDEX IF NOT EXISTS events_by_container ON events (container, seq);
CREATE INDEX IF NOT EXISTS events_by_hook ON events (container, hook_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (container, ts);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (ts);
INSERT INTO proxy_hooks_schema (component, version) VALUES ('{COMPONENT}', {SCHEMA_VERSION})
    ON CONFLICT (component) DO NOTHING;
"""


class SchemaTooNew(psycopg.Error):
    """The database holds a newer events schema than this proxy-hooks knows."""


class PostgresEventStore(SqlEventReads):
    errors: tuple[type[Exception], ...] = (psycopg.Error, OSError)
    keeps_failed_batches = True  # a server that restarts comes back: wait for it
    shared = True  # every proxy's events: a stream in one proxy's API must see the others' too
    placeholder = "%s"

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._location = describe_dsn(dsn)
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()

    @property
    def location(self) -> str:
        return self._location

    @property
    def name(self) -> str:
        return self._location

    def _new_connection(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit), the pool opened on first use."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=POOL_SIZE,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                    timeout=CONNECT_TIMEOUT_S,
                    name="proxy-hooks-events",
                    open=False,
                )
                self._pool.open(wait=False)
            pool = self._pool
        with pool.connection() as db:
            yield db

    def close(self) -> None:
        """Close the read pool (the API at exit)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # --- the writer ---

    def create(self) -> None:
        with self._new_connection() as db:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                db.execute(SCHEMA)
                row = db.execute(
                    "SELECT version FROM proxy_hooks_schema WHERE component = %s", (COMPONENT,)
                ).fetchone()
            if row is not None and row[0] > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"the events schema in {self.location} is version {row[0]}, newer than this "
                    f"proxy-hooks knows ({SCHEMA_VERSION}); upgrade proxy-hooks"
                )

    def writer(self) -> psycopg.Connection[Any]:
        return self._new_connection()

    def close_writer(self, db: psycopg.Connection[Any]) -> None:
        with contextlib.suppress(psycopg.Error, OSError):
            db.close()

    def writer_current(self, db: psycopg.Connection[Any], identity: tuple[int, int] | None) -> bool:
        return not db.closed and not db.broken

    def identity(self) -> tuple[int, int] | None:
        return (0, 0)  # a database is not replaced under its DSN the way a file is

    def is_corrupt(self, exc: BaseException) -> bool:
        return False  # the server looks after its own files

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError | OSError)  # the connection, not the data

    def move_aside(self) -> Path:
        raise RuntimeError("a PostgreSQL events store is never moved aside")

    def check(self, db: psycopg.Connection[Any]) -> None:
        self._read_newest(db)  # on the writer's own connection: the server is one for all

    def insert(self, events: Sequence[Event], db: psycopg.Connection[Any] | None = None) -> None:
        with self._using(db) as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (INSERT_LOCK,))
            with db.cursor() as cursor, cursor.copy(f"COPY events ({COLUMNS}) FROM STDIN") as copy:
                for row in rows(events):
                    copy.write_row(row)
