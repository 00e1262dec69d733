"""The PostgreSQL backend of the hooks store: one row per container, shared by many proxies.

- A container is a row of `hooks_containers`: its version and its document (jsonb, the same
  document a hooks file holds). The row's version is the truth; `file_version` in the document
  is only a copy of it.
- A write is one transaction: lock the row, compare its version with the caller's (412 on a
  mismatch, exactly as the file store), store the new document as version+1, and `NOTIFY` the
  change, so a proxy hears of a write only once it is committed.
- Every proxy listens on one connection of its own (`listen`), reads the container again when
  told, re-reads every version on each (re)connect (notifications are not replayed) and checks
  them all on a slow timer as a safety net.
- When the database cannot be reached, reads return the last good version and say why
  (`error`), and writes raise StoreUnavailable (503 from the API); the next read that reaches the
  database again clears it. Nothing here ever puts a DSN's password in a message.

Blocking and thread-safe like the file store (a few connections kept idle between calls); only
the listener is async, on the proxy's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from addon.database_url import describe_dsn
from addon.model import HooksFile
from addon.store.base import (
    Change,
    ChangeListener,
    Snapshot,
    StoreError,
    StoreUnavailable,
    StoreUnusable,
    T,
    VersionMismatch,
    document,
    with_minted_ids,
)
from addon.validation import FileRefs, InvalidInput, Problem, file_problems, load_hooks_file
from addon.versions import with_versions

log = logging.getLogger(__name__)

APPLICATION_NAME = "proxy-hooks"
CHANNEL = "proxy_hooks"  # NOTIFY payload: "<container> <version>"
COMPONENT = "hooks"  # our row in the schema table shared with the events store
CONNECT_TIMEOUT_S = 3
IDLE_CONNECTIONS = 4
# An idle connection older than this is pinged before use: the server may have restarted since.
PING_AFTER_S = 1.0
# The listener: how often it checks for a stop, how often it re-reads every version anyway, and
# how long it waits between attempts to reconnect (doubling up to the maximum).
POLL_S = 0.5
SAFETY_CHECK_S = 30.0
BACKOFF_S = (0.2, 5.0)

# A write is acknowledged (200 to the API's client) only once the server has flushed it, whatever
# the server's own default: a server set to synchronous_commit=off would lose the last
# acknowledged writes in a crash.
DURABLE = "SET LOCAL synchronous_commit TO on"

SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS proxy_hooks_schema (
    component text PRIMARY KEY,
    version integer NOT NULL
)
"""
# Each entry takes the schema from version N to N+1; never edit one that has shipped, add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE hooks_containers (
        container text PRIMARY KEY,
        version integer NOT NULL CHECK (version >= 1),
        document jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def absolute_scripts_problems(hooks_file: HooksFile, where: Path | None = None) -> list[Problem]:
    """A container in the database has no folder of its own: its scripts folder must be named
    absolutely (the scripts stay files on each proxy's machine)."""
    if os.path.isabs(hooks_file.scripts_dir):
        return []
    hint = (
        f" (for this file: {(where.parent / hooks_file.scripts_dir).absolute()}, if the proxies find "
        "the scripts there)"
        if where is not None
        else ""
    )
    return [
        Problem(
            "scripts_dir",
            f"{hooks_file.scripts_dir!r} is relative, and a container kept in PostgreSQL has no folder "
            f"to resolve it against: name the folder that holds the scripts on each proxy's machine "
            f"as an absolute path{hint}",
        )
    ]


class SchemaNotReady(StoreError):
    """The database has no proxy-hooks schema yet, or one this version cannot use."""


class Database:
    """Connections to one PostgreSQL database, a few of them kept idle between calls.

    Not psycopg_pool, which the events store uses: during an outage a pool makes each caller
    wait its whole timeout for a connection its background workers cannot open, then reports
    only that timeout. A write here must fail at once with the server's own reason ("connection
    refused", "the database system is shutting down") in its 503, and the API's calls are few
    and short, so connecting on demand and keeping a few idle ones is all the pooling it needs.
    """

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.where = describe_dsn(dsn)
        self._idle: list[tuple[float, psycopg.Connection[tuple[Any, ...]]]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """An autocommit connection (`with conn.transaction()` for a transaction); a lost or
        refused connection becomes StoreUnavailable."""
        conn = self._take()
        try:
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            conn.close()
            raise self.unavailable(exc) from None
        except BaseException:
            self._give_back(conn)
            raise
        self._give_back(conn)

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = conninfo_to_dict(self.dsn).get("password") if self.dsn else None
        if password:
            reason = reason.replace(str(password), "***")
        return StoreUnavailable(f"the hooks database {self.where} cannot be reached ({reason})")

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=APPLICATION_NAME,
            )
        except psycopg.Error as exc:
            raise self.unavailable(exc) from None

    def _take(self) -> psycopg.Connection[tuple[Any, ...]]:
        while True:
            with self._lock:
                if not self._idle:
                    break
                since, conn = self._idle.pop()
            if conn.closed or conn.broken:
                continue
            if time.monotonic() - since < PING_AFTER_S:
                return conn
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()
        return self.connect()

    def _give_back(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        if conn.closed or conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append((time.monotonic(), conn))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()

    # --- the schema ---

    def init(self) -> tuple[int, int]:
        """Create or migrate the schema: (version before, version now). Safe to run from several
        machines at once: the migrations run under a transaction-scoped advisory lock."""
        with self.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('proxy_hooks_schema'))")
            conn.execute(SCHEMA_TABLE)
            before = _schema_version(conn)
            if before > SCHEMA_VERSION:
                raise SchemaNotReady(_newer(self.where, before))
            for migration in MIGRATIONS[before:]:
                conn.execute(migration.encode())
            conn.execute(
                "INSERT INTO proxy_hooks_schema (component, version) VALUES (%s, %s) "
                "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                (COMPONENT, SCHEMA_VERSION),
            )
        return before, SCHEMA_VERSION

    def check_schema(self) -> None:
        """SchemaNotReady unless the schema is exactly the one this version writes."""
        with self.connection() as conn:
            exists = conn.execute("SELECT to_regclass('proxy_hooks_schema') IS NOT NULL").fetchone()
            version = _schema_version(conn) if exists and exists[0] else 0
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise SchemaNotReady(_newer(self.where, version))
        state = "has no proxy-hooks schema" if version == 0 else f"has schema version {version}"
        raise SchemaNotReady(
            f"{self.where} {state} (this proxy-hooks needs version {SCHEMA_VERSION}): run "
            "`proxy-hooks db init --config DSN` once"
        )

    def container_names(self) -> list[str]:
        with self.connection() as conn:
            return [row[0] for row in conn.execute("SELECT container FROM hooks_containers ORDER BY 1")]

    def insert(self, hooks_file: HooksFile) -> Snapshot:
        """A new container (ids minted where missing), announced like any write; VersionMismatch
        if another process created it first."""
        hooks_file = with_minted_ids(hooks_file)
        hooks_file = hooks_file.model_copy(update={"file_version": max(hooks_file.file_version, 1)})
        name, version = hooks_file.container, hooks_file.file_version
        with self.connection() as conn, conn.transaction():
            conn.execute(DURABLE)
            inserted = conn.execute(
                "INSERT INTO hooks_containers (container, version, document) VALUES (%s, %s, %s) "
                "ON CONFLICT (container) DO NOTHING",
                (name, version, Jsonb(document(hooks_file))),
            ).rowcount
            if inserted:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{name} {version}"))
        snapshot = Snapshot(row_path(name), hooks_file)
        if not inserted:
            raise VersionMismatch(snapshot)
        return snapshot


def _schema_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    row = conn.execute("SELECT version FROM proxy_hooks_schema WHERE component = %s", (COMPONENT,)).fetchone()
    return int(row[0]) if row else 0


def _newer(where: str, version: int) -> str:
    return (
        f"{where} has hooks schema version {version}, newer than this proxy-hooks knows "
        f"({SCHEMA_VERSION}): upgrade proxy-hooks on this machine"
    )


def row_path(container: str) -> Path:
    """How messages name a container kept in the database (`postgresql/<container>: field: …`)."""
    return Path("postgresql") / container


class PostgresHooksStore:
    """One container's row."""

    def __init__(self, database: Database, container: str):
        self.database = database
        self.container = container
        self._path = row_path(container)
        self._cache: Snapshot | None = None
        self._accept_lock = threading.Lock()
        self.error: StoreUnusable | None = None
        self.on_change: ChangeListener | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def last_good(self) -> Snapshot | None:
        return self._cache

    def open(self) -> Snapshot:
        snapshot = self.read()
        if self.error is not None:
            raise self.error
        return snapshot

    def read(self) -> Snapshot:
        """One round trip; the document only travels when its version is new to this process."""
        known = -1 if self._cache is None else self._cache.version
        try:
            with self.database.connection() as conn:
                row = conn.execute(
                    "SELECT version, CASE WHEN version = %s THEN NULL ELSE document END "
                    "FROM hooks_containers WHERE container = %s",
                    (known, self.container),
                ).fetchone()
        except StoreUnavailable as exc:
            return self._fail(exc)
        if row is None:
            return self._fail(self._missing())
        version, doc = int(row[0]), row[1]
        if doc is None and self._cache is not None:
            return self._accept(self._cache)
        try:
            hooks_file = self._parse(version, doc)
        except InvalidInput as exc:
            return self._fail(StoreUnusable(f"{self.path}: invalid", exc.problems))
        return self._accept(Snapshot(self.path, hooks_file))

    def write(self, expected_version: int | None, change: Change[T]) -> tuple[Snapshot, T]:
        with self.database.connection() as conn, conn.transaction():
            conn.execute(DURABLE)
            row = conn.execute(
                "SELECT version, document FROM hooks_containers WHERE container = %s FOR UPDATE",
                (self.container,),
            ).fetchone()
            if row is None:
                raise self._missing()
            version = int(row[0])
            cached = self._cache
            if cached is not None and cached.version == version:
                current = cached
            else:
                try:
                    current = Snapshot(self.path, self._parse(version, row[1]))
                except InvalidInput as exc:
                    raise StoreUnusable(f"{self.path}: invalid", exc.problems) from None
            if expected_version is not None and version != expected_version:
                raise VersionMismatch(current)
            changed, result = change(current.hooks_file)
            changed = with_versions(current.hooks_file, changed)
            changed = changed.model_copy(update={"file_version": version + 1})
            snapshot = Snapshot(self.path, changed)
            problems = file_problems(FileRefs.of(changed), snapshot.scripts_root)
            problems += absolute_scripts_problems(changed)
            if problems:
                raise InvalidInput(problems)
            conn.execute(
                "UPDATE hooks_containers SET version = %s, document = %s, updated_at = now() "
                "WHERE container = %s",
                (version + 1, Jsonb(document(changed)), self.container),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.container} {version + 1}"))
        return self._accept(snapshot), result

    def _missing(self) -> StoreUnusable:
        return StoreUnusable(
            f"{self.path}: no such container",
            [Problem("container", f"{self.container!r} is no longer in {self.database.where}")],
        )

    def _parse(self, version: int, doc: Any) -> HooksFile:
        if not isinstance(doc, dict):
            raise InvalidInput([Problem("", "the stored document is not a JSON object")])
        hooks_file = load_hooks_file(self.path, {**doc, "file_version": version})
        problems = absolute_scripts_problems(hooks_file)
        if problems:
            raise InvalidInput(problems)
        return hooks_file

    def _accept(self, snapshot: Snapshot) -> Snapshot:
        with self._accept_lock:  # two threads with two versions: the newer one stays cached,
            previous = self._cache  # and each caller still gets the version it read or wrote
            if previous is not None and previous.version > snapshot.version:
                return snapshot
            self._cache = snapshot
            if self.error is not None:
                log.info("proxy-hooks: %s is readable again (version %d)", self.path, snapshot.version)
            self.error = None
        if previous is not None and previous.version != snapshot.version and self.on_change:
            self.on_change("reload", snapshot.version, None)
        return snapshot

    def _fail(self, error: StoreUnusable) -> Snapshot:
        if self.error is None or self.error.problems != error.problems:
            kept = "" if self._cache is None else f"; keeping the last good version ({self._cache.version})"
            log.warning("proxy-hooks: %s: %s%s", self.path, error, kept)
            if self.on_change and self._cache is not None and not isinstance(error, StoreUnavailable):
                self.on_change("rejected", None, error.problems)
        self.error = error
        if self._cache is None:
            raise error
        return self._cache


async def listen(database: Database, stores: dict[str, PostgresHooksStore], stop: asyncio.Event) -> None:
    """Keep every store at the newest version: LISTEN on a connection of our own, read a
    container again when told, read them all on every (re)connect and every SAFETY_CHECK_S.
    Reconnects with a growing pause while the database is away; never raises."""
    pause = BACKOFF_S[0]
    lost = False
    while not stop.is_set():
        try:
            conn = await psycopg.AsyncConnection.connect(
                database.dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=f"{APPLICATION_NAME} listener",
            )
            async with conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                await _read_all(stores)  # whatever was written while we were not listening
                if lost:
                    log.info("proxy-hooks: listening to %s again", database.where)
                lost, pause = False, BACKOFF_S[0]
                await _follow(conn, stores, stop)
        except (psycopg.Error, StoreError, OSError) as exc:
            if not lost:
                log.warning(
                    "proxy-hooks: lost the change notifications of %s; enforcing the last good "
                    "versions and reconnecting: %s",
                    database.where,
                    database.unavailable(exc),
                )
            lost = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            pause = min(pause * 2, BACKOFF_S[1])
        except Exception as exc:  # the proxy must never go down because of the listener
            log.warning("proxy-hooks: the hooks database listener stopped (%s); restart to resume", exc)
            return
    database.close()


async def _follow(
    conn: psycopg.AsyncConnection[tuple[Any, ...]], stores: dict[str, PostgresHooksStore], stop: asyncio.Event
) -> None:
    loop = asyncio.get_running_loop()
    next_check = loop.time() + SAFETY_CHECK_S
    while not stop.is_set():
        async for notice in conn.notifies(timeout=POLL_S):
            store = stores.get(notice.payload.partition(" ")[0])
            if store is not None:
                await asyncio.to_thread(store.read)
        if loop.time() >= next_check:
            await _read_all(stores)
            next_check = loop.time() + SAFETY_CHECK_S


async def _read_all(stores: dict[str, PostgresHooksStore]) -> None:
    for store in stores.values():
        await asyncio.to_thread(store.read)
