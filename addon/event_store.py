"""Events in an embedded SQLite file (WAL): written in batches by one writer, read by many.

Every method is blocking; the recorder calls the writes from its own thread and the API runs
reads with `asyncio.to_thread`. Each call opens what it needs: SQLite connections are cheap
and must not cross threads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from addon.capture import Exchange
from addon.events import EVENT_KINDS, OUTCOMES, RUN_KINDS, Event, EventQuery, iso_utc

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
    cached INTEGER
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
ADDED_COLUMNS = (
    ("client", "TEXT"), ("changed", "INTEGER"), ("exchange", "TEXT"), ("cached", "INTEGER")
)
RECENT_CLIENTS = 10
CACHED_RUNS = "coalesce(sum(cached), 0)"  # runs whose verdict came from the hook's cache
PRUNE_CHUNK = 5000
PERIODS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
# The stats' timeline: hourly buckets over a day, daily ones beyond (the width of the ISO prefix
# that names a bucket, and the bucket's length).
BUCKETS = {
    "24h": (13, dt.timedelta(hours=1)),
    "7d": (10, dt.timedelta(days=1)),
    "30d": (10, dt.timedelta(days=1)),
}


# SQLite's own words for "this file is not (or no longer) a database we can use".
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_SIDECARS = ("-wal", "-shm", "-journal")


def is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES
        or "malformed" in str(exc)
        or "not a database" in str(exc)
    )


class SQLiteEventStore:
    def __init__(self, path: Path):
        self.path = path

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

    def probe(self) -> None:
        """Read what every query reads first (header, schema, the newest row) through a new
        connection, as a reader would; raises sqlite3.Error/OSError when that fails."""
        with self._connect() as db:
            db.execute("SELECT seq FROM events ORDER BY seq DESC LIMIT 1").fetchone()

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

    def insert(self, events: Sequence[Event], db: sqlite3.Connection | None = None) -> None:
        if db is None:
            with self._connect() as own:
                return self.insert(events, own)
        rows = [
            (e.id, e.ts, e.kind, e.container, e.service, e.hook_id, e.outcome, int(e.blocked),
             e.duration_ms, e.model_dump_json(), e.client, _changed(e),
             None if e._exchange is None else e._exchange.model_dump_json(), int(e.cached))
            for e in events
        ]  # fmt: skip
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO events (id, ts, kind, container, service, hook_id, outcome, blocked,"
                " duration_ms, data, client, changed, exchange, cached)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return None

    def prune(self, max_rows: int, max_age: dt.timedelta | None) -> int:
        """Drop the oldest rows beyond `max_rows` and those older than `max_age`, a chunk at a
        time so a large backlog never holds the write lock for long."""
        removed = 0
        with self._connect() as db:
            if max_age is not None:
                cutoff = iso_utc(dt.datetime.now(dt.UTC) - max_age)
                removed += db.execute(
                    "DELETE FROM events WHERE seq IN"
                    " (SELECT seq FROM events WHERE ts < ? ORDER BY seq LIMIT ?)",
                    (cutoff, PRUNE_CHUNK),
                ).rowcount
            row = db.execute(
                "SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?", (max_rows,)
            ).fetchone()
            if row is not None:
                removed += db.execute(
                    "DELETE FROM events WHERE seq IN"
                    " (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?)",
                    (row[0], PRUNE_CHUNK),
                ).rowcount
        return removed

    # --- reading ---

    def query(
        self, container: str, query: EventQuery, after: int | None = None
    ) -> tuple[list[tuple[int, Event]], str | None]:
        """Newest first, a page at a time; with `after` (a stream), oldest first from there."""
        where, params = _filters(container, query)
        if after is not None:
            where.append("seq > ?")
            params.append(after)
            order = "ASC"
        else:
            if query.cursor is not None:
                where.append("seq < ?")
                params.append(int(query.cursor))
            order = "DESC"
        sql = f"SELECT seq, data FROM events WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        with self._connect() as db:
            rows = db.execute(sql, [*params, query.limit + 1]).fetchall()
        page = [(seq, Event.model_validate_json(data)) for seq, data in rows[: query.limit]]
        more = len(rows) > query.limit and after is None
        return page, (str(page[-1][0]) if more and page else None)

    def runs(
        self,
        container: str,
        service: str,
        hook_id: str,
        last: int,
        outcomes: Sequence[str],
        changed: bool | None = None,
    ) -> list[Event]:
        query = EventQuery(
            service=service, hookId=hook_id, outcome=list(outcomes), kind=["run"], limit=last, changed=changed
        )
        return [event for _, event in self.query(container, query)[0]]

    def exchange(self, container: str, event_id: str) -> tuple[Event, Exchange | None] | None:
        """An event and its captured exchange (None: its hook does not capture); None: no such
        event in the container."""
        with self._connect() as db:
            row = db.execute(
                "SELECT data, exchange FROM events WHERE container = ? AND id = ?", (container, event_id)
            ).fetchone()
        if row is None:
            return None
        return Event.model_validate_json(row[0]), None if row[1] is None else Exchange.model_validate_json(
            row[1]
        )

    def captured(self, container: str, query: EventQuery) -> list[tuple[Event, Exchange]]:
        """The newest `query.limit` captured exchanges matching the filters, oldest first."""
        where, params = _filters(container, query)
        where.append("exchange IS NOT NULL")
        if query.cursor is not None:
            where.append("seq < ?")
            params.append(int(query.cursor))
        sql = f"SELECT data, exchange FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
        with self._connect() as db:
            rows = db.execute(sql, [*params, query.limit]).fetchall()
        return [
            (Event.model_validate_json(data), Exchange.model_validate_json(exchange))
            for data, exchange in reversed(rows)
        ]

    def last_seq(self, container: str) -> int:
        with self._connect() as db:
            row = db.execute("SELECT max(seq) FROM events WHERE container = ?", (container,)).fetchone()
        return int(row[0] or 0)

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])

    def stats(self, container: str, period: str) -> dict[str, Any]:
        since = iso_utc(dt.datetime.now(dt.UTC) - PERIODS[period])
        base = "FROM events WHERE container = ? AND kind = 'run' AND ts >= ?"
        args = (container, since)
        with self._connect() as db:
            total, blocked, avg = db.execute(
                f"SELECT count(*), coalesce(sum(blocked), 0), avg(duration_ms) {base}", args
            ).fetchone()
            timed = db.execute(f"SELECT count(duration_ms) {base}", args).fetchone()[0]
            p95 = None
            if timed:
                rank = math.ceil(0.95 * timed) - 1  # nearest-rank percentile
                p95 = db.execute(
                    f"SELECT duration_ms {base} AND duration_ms IS NOT NULL"
                    " ORDER BY duration_ms LIMIT 1 OFFSET ?",
                    (*args, rank),
                ).fetchone()[0]
            by_outcome = dict(
                db.execute(f"SELECT outcome, count(*) {base} GROUP BY outcome", args).fetchall()
            )
            services = db.execute(
                f"SELECT service, count(*), sum(blocked), avg(duration_ms) {base}"
                " GROUP BY service ORDER BY service",
                args,
            ).fetchall()
            hooks = db.execute(
                f"SELECT hook_id, service, count(*), sum(blocked), avg(duration_ms), {CACHED_RUNS} {base}"
                " GROUP BY hook_id, service ORDER BY count(*) DESC, hook_id",
                args,
            ).fetchall()
            days = db.execute(
                f"SELECT substr(ts, 1, 10) AS day, count(*), sum(blocked), avg(duration_ms) {base}"
                " GROUP BY day ORDER BY day",
                args,
            ).fetchall()
            by_kind = dict(
                db.execute(
                    "SELECT kind, count(*) FROM events WHERE container = ? AND ts >= ? GROUP BY kind", args
                ).fetchall()
            )
            clients = db.execute(
                f"SELECT client, max(ts), count(*) {base} AND client IS NOT NULL"
                " GROUP BY client ORDER BY max(ts) DESC, max(seq) DESC LIMIT ?",
                (*args, RECENT_CLIENTS),
            ).fetchall()
            width = BUCKETS[period][0]
            buckets = db.execute(
                f"SELECT substr(ts, 1, {width}) AS bucket, outcome, count(*) {base} GROUP BY bucket, outcome",
                args,
            ).fetchall()
        return {
            "period": period,
            "totalEvents": total,
            "blockedEvents": blocked,
            "blockRate": round(blocked * 100 / total, 2) if total else 0,
            "avgDurationMs": _ms(avg),
            "p95DurationMs": _ms(p95),
            "eventsByOutcome": {outcome: by_outcome.get(outcome, 0) for outcome in OUTCOMES},
            "serviceBreakdown": [
                {"service": s, "total": n, "blocked": b, "avgDurationMs": _ms(d)} for s, n, b, d in services
            ],
            "hookBreakdown": [
                {
                    "hookId": h,
                    "service": s,
                    "total": n,
                    "blocked": b,
                    "avgDurationMs": _ms(d),
                    "cached": c,
                    "cacheHitRate": round(c * 100 / n, 2) if n else 0,
                }
                for h, s, n, b, d, c in hooks
            ],
            "dailyActivity": [
                {"date": day, "total": n, "blocked": b, "allowed": n - b, "avgDurationMs": _ms(d)}
                for day, n, b, d in days
            ],
            "eventsByKind": {kind: by_kind.get(kind, 0) for kind in EVENT_KINDS},
            "notes": by_kind.get("note", 0),
            "recentClients": [
                {"address": address, "lastSeen": last, "runs": n} for address, last, n in clients
            ],
            "timeline": _timeline(period, since, buckets),
        }


def _changed(event: Event) -> int | None:
    """The `changed` column: known for runs only."""
    return int(event.changes is not None) if event.kind in RUN_KINDS else None


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


def _timeline(period: str, since: str, rows: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Runs per bucket and outcome, every bucket of the period listed (empty ones too), oldest
    first, so a chart's x axis is the period itself."""
    width, step = BUCKETS[period]
    counts: dict[str, dict[str, int]] = {}
    for bucket, outcome, n in rows:
        counts.setdefault(bucket, {})[outcome] = n
    start = dt.datetime.fromisoformat(since.replace("Z", "+00:00")).replace(minute=0, second=0, microsecond=0)
    if step >= dt.timedelta(days=1):
        start = start.replace(hour=0)
    end = dt.datetime.now(dt.UTC)
    timeline = []
    while start <= end:
        key = start.strftime("%Y-%m-%dT%H" if width == 13 else "%Y-%m-%d")
        found = counts.get(key, {})
        timeline.append(
            {
                "start": iso_utc(start),
                "total": sum(found.values()),
                "byOutcome": {o: found.get(o, 0) for o in OUTCOMES},
            }
        )
        start += step
    return timeline


def _ms(value: float | None) -> float:
    return round(value, 3) if value is not None else 0


def _filters(container: str, query: EventQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = ["container = ?"]
    params: list[Any] = [container]
    if query.service is not None:
        where.append("service = ?")
        params.append(query.service)
    if query.hookId is not None:
        where.append("hook_id = ?")
        params.append(query.hookId)
    if query.outcome:
        where.append(f"outcome IN ({', '.join('?' * len(query.outcome))})")
        params.extend(query.outcome)
    if query.kind:
        where.append(f"kind IN ({', '.join('?' * len(query.kind))})")
        params.extend(query.kind)
    if query.blocked is not None:
        where.append("blocked = ?")
        params.append(int(query.blocked))
    if query.changed is not None:
        where.append("changed = ?")
        params.append(int(query.changed))
    if query.since is not None:
        where.append("ts >= ?")
        params.append(iso_utc(query.since))
    if query.until is not None:
        where.append("ts < ?")
        params.append(iso_utc(query.until))
    return where, params
