"""The SQL both stores share: one `events` table with the same columns, read and aggregated by
the same statements, so the SQLite and the PostgreSQL store answer every query identically.

A subclass gives `_connect()` (a DB-API connection in autocommit mode) and its placeholder; the
statements here are written with `?` and use only what both databases read the same way (text
timestamps in fixed-width ISO 8601, compared and cut as strings; integer flags summed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator, Sequence
from typing import Any

from addon.capture import Exchange
from addon.event_stores.base import PERIODS
from addon.events import EVENT_KINDS, OUTCOMES, RUN_KINDS, Event, EventQuery, iso_utc

RECENT_CLIENTS = 10
CACHED_RUNS = "coalesce(sum(cached), 0)"  # runs whose verdict came from the hook's cache
PRUNE_CHUNK = 5000
# The columns a batch fills, in the order of `rows`.
COLUMNS = (
    "id, ts, kind, container, service, hook_id, outcome, blocked, duration_ms, data, client, changed,"
    " exchange, cached, instance"
)
COLUMN_COUNT = COLUMNS.count(",") + 1
# The stats' timeline: hourly buckets over a day, daily ones beyond (the width of the ISO prefix
# that names a bucket, and the bucket's length).
BUCKETS = {
    "24h": (13, dt.timedelta(hours=1)),
    "7d": (10, dt.timedelta(days=1)),
    "30d": (10, dt.timedelta(days=1)),
}


def rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """The row of each event, in `COLUMNS` order."""
    return [
        (e.id, e.ts, e.kind, e.container, e.service, e.hook_id, e.outcome, int(e.blocked),
         e.duration_ms, e.model_dump_json(), e.client, _changed(e),
         None if e._exchange is None else e._exchange.model_dump_json(), int(e.cached), e.instance)
        for e in events
    ]  # fmt: skip


class SqlEventReads:
    """Retention and every read of the `events` table."""

    placeholder = "?"

    def _connect(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _using(self, db: Any) -> Iterator[Any]:
        """The connection given, or one of the store's own for this call."""
        if db is not None:
            yield db
            return
        with self._connect() as own:
            yield own

    def _read_newest(self, db: Any) -> None:
        """Read what every query reads first (header, schema, the newest row); raises the
        store's `errors` when that fails."""
        db.execute("SELECT seq FROM events ORDER BY seq DESC LIMIT 1").fetchone()

    def probe(self) -> None:
        """`_read_newest` through a connection of the store's own, as a reader (the API) would."""
        with self._connect() as db:
            self._read_newest(db)

    def _run(self, db: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        return db.execute(sql, params)

    def prune(self, max_rows: int, max_age: dt.timedelta | None, db: Any = None) -> int:
        """Drop the oldest rows beyond `max_rows` and those older than `max_age`, a chunk at a
        time so a large backlog never holds the write lock for long."""
        removed = 0
        with self._using(db) as db:
            if max_age is not None:
                cutoff = iso_utc(dt.datetime.now(dt.UTC) - max_age)
                removed += self._run(
                    db,
                    "DELETE FROM events WHERE seq IN"
                    " (SELECT seq FROM events WHERE ts < ? ORDER BY seq LIMIT ?)",
                    (cutoff, PRUNE_CHUNK),
                ).rowcount
            row = self._run(
                db, "SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?", (max_rows,)
            ).fetchone()
            if row is not None:
                removed += self._run(
                    db,
                    "DELETE FROM events WHERE seq IN"
                    " (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?)",
                    (row[0], PRUNE_CHUNK),
                ).rowcount
        return removed

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
            found = self._run(db, sql, [*params, query.limit + 1]).fetchall()
        page = [(int(seq), Event.model_validate_json(data)) for seq, data in found[: query.limit]]
        more = len(found) > query.limit and after is None
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
            row = self._run(
                db, "SELECT data, exchange FROM events WHERE container = ? AND id = ?", (container, event_id)
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
            found = self._run(db, sql, [*params, query.limit]).fetchall()
        return [
            (Event.model_validate_json(data), Exchange.model_validate_json(exchange))
            for data, exchange in reversed(found)
        ]

    def last_seq(self, container: str) -> int:
        with self._connect() as db:
            row = self._run(db, "SELECT max(seq) FROM events WHERE container = ?", (container,)).fetchone()
        return int(row[0] or 0)

    def count(self) -> int:
        with self._connect() as db:
            return int(self._run(db, "SELECT count(*) FROM events").fetchone()[0])

    def stats(self, container: str, period: str) -> dict[str, Any]:
        since = iso_utc(dt.datetime.now(dt.UTC) - PERIODS[period])
        base = "FROM events WHERE container = ? AND kind = 'run' AND ts >= ?"
        args = (container, since)
        with self._connect() as db:
            total, blocked, avg = self._run(
                db, f"SELECT count(*), coalesce(sum(blocked), 0), avg(duration_ms) {base}", args
            ).fetchone()
            timed = self._run(db, f"SELECT count(duration_ms) {base}", args).fetchone()[0]
            p95 = None
            if timed:
                rank = math.ceil(0.95 * timed) - 1  # nearest-rank percentile
                p95 = self._run(
                    db,
                    f"SELECT duration_ms {base} AND duration_ms IS NOT NULL"
                    " ORDER BY duration_ms LIMIT 1 OFFSET ?",
                    (*args, rank),
                ).fetchone()[0]
            by_outcome = dict(
                self._run(db, f"SELECT outcome, count(*) {base} GROUP BY outcome", args).fetchall()
            )
            services = self._run(
                db,
                f"SELECT service, count(*), sum(blocked), avg(duration_ms) {base}"
                " GROUP BY service ORDER BY service",
                args,
            ).fetchall()
            hooks = self._run(
                db,
                f"SELECT hook_id, service, count(*), sum(blocked), avg(duration_ms), {CACHED_RUNS} {base}"
                " GROUP BY hook_id, service ORDER BY count(*) DESC, hook_id",
                args,
            ).fetchall()
            days = self._run(
                db,
                f"SELECT substr(ts, 1, 10) AS day, count(*), sum(blocked), avg(duration_ms) {base}"
                " GROUP BY day ORDER BY day",
                args,
            ).fetchall()
            kinds = "SELECT kind, count(*) FROM events WHERE container = ? AND ts >= ? GROUP BY kind"
            by_kind = dict(self._run(db, kinds, args).fetchall())
            clients = self._run(
                db,
                f"SELECT client, max(ts), count(*) {base} AND client IS NOT NULL"
                " GROUP BY client ORDER BY max(ts) DESC, max(seq) DESC LIMIT ?",
                (*args, RECENT_CLIENTS),
            ).fetchall()
            width = BUCKETS[period][0]
            buckets = self._run(
                db,
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


def _timeline(period: str, since: str, found: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Runs per bucket and outcome, every bucket of the period listed (empty ones too), oldest
    first, so a chart's x axis is the period itself."""
    width, step = BUCKETS[period]
    counts: dict[str, dict[str, int]] = {}
    for bucket, outcome, n in found:
        counts.setdefault(bucket, {})[outcome] = n
    start = dt.datetime.fromisoformat(since.replace("Z", "+00:00")).replace(minute=0, second=0, microsecond=0)
    if step >= dt.timedelta(days=1):
        start = start.replace(hour=0)
    end = dt.datetime.now(dt.UTC)
    timeline = []
    while start <= end:
        key = start.strftime("%Y-%m-%dT%H" if width == 13 else "%Y-%m-%d")
        present = counts.get(key, {})
        timeline.append(
            {
                "start": iso_utc(start),
                "total": sum(present.values()),
                "byOutcome": {o: present.get(o, 0) for o in OUTCOMES},
            }
        )
        start += step
    return timeline


def _ms(value: float | None) -> float:
    return round(value, 3) if value is not None else 0


def _filters(container: str, query: EventQuery) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a query (joined with AND) and their parameters, in order."""
    flag = None if query.blocked is None else int(query.blocked)
    changed = None if query.changed is None else int(query.changed)
    since = None if query.since is None else iso_utc(query.since)
    until = None if query.until is None else iso_utc(query.until)
    compared: list[tuple[str, Any]] = [
        ("container = ?", container),
        ("service = ?", query.service),
        ("hook_id = ?", query.hookId),
        ("instance = ?", query.instance),
        ("blocked = ?", flag),
        ("changed = ?", changed),
        ("ts >= ?", since),
        ("ts < ?", until),
    ]
    where = [condition for condition, value in compared if value is not None]
    params = [value for _, value in compared if value is not None]
    for column, values in (("outcome", query.outcome), ("kind", query.kind)):
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return where, params
