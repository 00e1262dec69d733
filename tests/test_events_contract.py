"""One contract for every events store: the SQLite file and the PostgreSQL database answer each
call alike (filters, cursor, streams, stats, retention, captured exchanges, notes), and the
recorder writes into either without dropping a run. Real SQLite file, real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from addon.capture import Exchange
from addon.changes import RequestChanges, RunChanges
from addon.database_url import describe_dsn
from addon.event_recorder import EventRecorder
from addon.event_stores import EventStore, open_event_store
from addon.event_stores.postgres import PostgresEventStore
from addon.events import Event, EventQuery, iso_utc
from tests.conftest import ApiProcess, write_container
from tests.harness import wait_for
from tests.postgres_server import LocalPostgres

NOW = dt.datetime.now(dt.UTC)
BACKENDS = ("sqlite", "postgresql")


def _open(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> EventStore:
    location = str(tmp_path / "events.db") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    store = open_event_store(location)
    store.create()
    return store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    opened = _open(request.param, tmp_path, request)
    yield opened
    if isinstance(opened, PostgresEventStore):
        opened.close()


@pytest.fixture
def both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[EventStore]]:
    """A SQLite and a PostgreSQL store side by side, for answers compared one to one."""
    stores = [_open(kind, tmp_path, request) for kind in BACKENDS]
    yield stores
    for opened in stores:
        if isinstance(opened, PostgresEventStore):
            opened.close()


def ago(minutes: float) -> str:
    return iso_utc(NOW - dt.timedelta(minutes=minutes))


def exchange_of(n: int) -> Exchange:
    return Exchange.model_validate(
        {"request": {"method": "GET", "url": f"http://a.test/{n}", "headers": [], "body": None}}
    )


def mixed_events(container: str = "c") -> list[Event]:
    """Runs of every outcome over two services, three hooks, clients and instances, spread over
    ten days (so every period sees a different share), plus the other kinds."""
    outcomes = ("continued", "blocked", "modified", "failed", "timeout", "observed", "responded")
    events = []
    for n in range(140):
        outcome = outcomes[n % len(outcomes)]
        event = Event.model_validate(
            {
                "ts": ago(n * 97 + n % 5),  # up to ~9.4 days back, uneven
                "container": container if n % 11 else "other",
                "service": "s" if n % 3 else "t",
                "hook_id": f"h{n % 3}",
                "outcome": outcome,
                "blocked": outcome == "blocked",
                "duration_ms": None if n % 13 == 0 else (n * 7919) % 1000 / 7,
                "client": f"10.0.0.{n % 14}",
                "instance": f"proxy-{n % 3}",
                "cached": n % 4 == 0,
                "changes": RunChanges(request=RequestChanges(headers_set=["x-a"]))
                if outcome == "modified"
                else None,
            }
        )
        if n % 6 == 0:
            event._with_exchange(exchange_of(n))
        events.append(event)
    for n, kind in enumerate(("dry_run", "config_reload", "config_rejected", "note", "note")):
        events.append(Event.model_validate({"ts": ago(n * 30 + 1), "container": container, "kind": kind}))
    return sorted(events, key=lambda e: e.ts)  # written oldest first, as a recorder does


QUERIES: list[dict[str, Any]] = [
    {},
    {"service": "s"},
    {"hookId": "h1", "outcome": ["blocked", "continued"]},
    {"kind": ["note", "config_reload"]},
    {"blocked": True},
    {"changed": True},
    {"changed": False, "service": "t"},
    {"instance": "proxy-2"},
    {"since": NOW - dt.timedelta(days=2), "until": NOW - dt.timedelta(hours=3)},
    {"limit": 7},
]


def test_every_query_filter_stats_and_read_answers_alike_on_both_backends(both: list[EventStore]) -> None:
    events = mixed_events()
    for opened in both:
        opened.insert(events[:70])
        opened.insert(events[70:])
    answers = []
    for opened in both:
        answer: dict[str, Any] = {}
        for n, fields in enumerate(QUERIES):
            page, cursor = opened.query("c", EventQuery.model_validate(fields))
            answer[f"q{n}"] = ([e.model_dump() for _, e in page], cursor)
        answer["after"] = [(seq, e.id) for seq, e in opened.query("c", EventQuery(limit=20), after=30)[0]]
        answer["runs"] = [e.id for e in opened.runs("c", "s", "h1", 5, ["blocked", "modified"])]
        answer["changed_runs"] = [e.id for e in opened.runs("c", "s", "h2", 50, [], changed=True)]
        answer["captured"] = [(e.id, x.model_dump()) for e, x in opened.captured("c", EventQuery(limit=4))]
        answer["last_seq"] = opened.last_seq("c")
        answer["count"] = opened.count()
        for period in ("24h", "7d", "30d"):
            answer[period] = opened.stats("c", period)
        answers.append(answer)
    sqlite_answer, postgres_answer = answers
    assert sqlite_answer.keys() == postgres_answer.keys()
    for key in sqlite_answer:
        assert postgres_answer[key] == sqlite_answer[key], key
    # and the answers are about something: each query found rows, the stats counted runs
    assert all(sqlite_answer[f"q{n}"][0] for n in range(len(QUERIES)))
    assert sqlite_answer["30d"]["totalEvents"] == sum(
        1 for e in events if e.container == "c" and e.kind == "run"
    )
    assert sqlite_answer["24h"]["notes"] == 2 and sqlite_answer["captured"]


def test_filters_match_an_independent_selection(store: EventStore) -> None:
    events = mixed_events()
    store.insert(events)
    for fields in QUERIES:
        query = EventQuery.model_validate({**fields, "limit": 500})
        found = [e.id for _, e in store.query("c", query)[0]]
        expected = [
            e.id
            for e in reversed(events)
            if e.container == "c"
            and (query.service is None or e.service == query.service)
            and (query.hookId is None or e.hook_id == query.hookId)
            and (query.instance is None or e.instance == query.instance)
            and (not query.outcome or e.outcome in query.outcome)
            and (not query.kind or e.kind in query.kind)
            and (query.blocked is None or e.blocked == query.blocked)
            and (
                query.changed is None
                or (e.kind in ("run", "dry_run") and (e.changes is not None) == query.changed)
            )
            and (query.since is None or e.ts >= iso_utc(query.since))
            and (query.until is None or e.ts < iso_utc(query.until))
        ]
        assert found == expected, fields


def test_cursor_pages_and_a_stream_walk_every_row_once_in_order(store: EventStore) -> None:
    events = mixed_events()
    store.insert(events)
    seen, cursor = [], None
    while True:
        page, cursor = store.query("c", EventQuery(limit=9, cursor=cursor))
        seen += [e.id for _, e in page]
        if cursor is None:
            break
    mine = [e.id for e in events if e.container == "c"]
    assert seen == mine[::-1]
    streamed, after = [], 0
    while True:
        rows, _ = store.query("c", EventQuery(limit=11), after=after)
        if not rows:
            break
        streamed += [e.id for _, e in rows]
        after = rows[-1][0]
    assert streamed == mine and after == store.last_seq("c")


def test_exchange_and_captured(store: EventStore) -> None:
    plain = Event(container="c", service="s", hook_id="h")
    captured = Event(container="c", service="s", hook_id="h")._with_exchange(exchange_of(7))
    store.insert([plain, captured])
    assert store.exchange("c", plain.id) == (plain, None)
    found = store.exchange("c", captured.id)
    assert found is not None and found[0].model_dump() == captured.model_dump() and found[1] == exchange_of(7)
    assert store.exchange("other", captured.id) is None
    [(event, exchange)] = store.captured("c", EventQuery())
    assert event.id == captured.id and exchange == exchange_of(7)


def test_retention_by_rows_and_by_age(store: EventStore) -> None:
    old = [Event(container="c", ts=ago(60 * 24 * 3), message=str(n), kind="note") for n in range(5)]
    new = [Event(container="c", message=str(n), kind="note") for n in range(5, 20)]
    store.insert(old + new)
    while store.prune(1000, dt.timedelta(days=1)):
        pass
    assert store.count() == 15
    while store.prune(10, None):
        pass
    assert [e.message for _, e in store.query("c", EventQuery())[0]] == [str(n) for n in range(19, 9, -1)]


async def test_the_recorder_writes_a_flood_into_either_store_completely(store: EventStore) -> None:
    recorder = EventRecorder(store, instance="proxy-a")
    assert recorder.start()
    for n in range(5000):
        recorder.add(Event(container="c", service="s", hook_id="h", duration_ms=n))
    recorder.config_changed("c", "reload", 3, None)
    recorder.stop()
    assert recorder.dropped == 0 and recorder.written == 5001 and store.count() == 5001
    page, _ = store.query("c", EventQuery(instance="proxy-a", kind=["config_reload"]))
    assert [(e.instance, e.file_version) for _, e in page] == [("proxy-a", 3)]


def test_a_postgres_location_never_shows_its_password() -> None:
    store = open_event_store("postgresql://alice:s3cret@db.example:5433/events?sslmode=require")
    assert store.location == "postgresql://alice@db.example:5433/events"
    assert "s3cret" not in describe_dsn("postgres://u:s3cret@[::1]/x")


async def test_a_database_that_goes_away_queues_runs_and_writes_them_when_it_is_back() -> None:
    """The writer waits for the server (within the queue's bound), reconnects by itself and
    loses nothing that fit the queue; it never blocks the caller meanwhile."""
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="proxy-hooks-pg-")) / "data")
    server.start()
    server.wait_ready()
    try:
        store = open_event_store(server.create_database())
        recorder = EventRecorder(store, queue_size=1000)
        assert recorder.start()
        recorder.add(Event(container="c", message="before", kind="note"))
        wait_for(lambda: recorder.written == 1, 10, "the first event to be written")
        # A clean stop: the test server runs with synchronous_commit=off, so a crash
        # ("immediate") may lose what it had acknowledged, which is not what this is about.
        server.stop("fast")
        for n in range(300):
            recorder.add(Event(container="c", message=str(n), kind="note"))  # returns at once
        wait_for(lambda: recorder.error is not None, 20, "the writer to notice the database is gone")
        assert recorder.dropped == 0  # waiting in the queue, not lost
        for n in range(300, 2000):
            recorder.add(Event(container="c", message=str(n), kind="note"))
        assert recorder.dropped > 0  # past the bound: dropped and counted, never waited for
        server.start()
        wait_for(
            lambda: recorder.error is None and recorder.store.count() == recorder.written, 30, "recovery"
        )
        wait_for(lambda: recorder.written + recorder.dropped == 2001, 30, "every event written or counted")
        recorder.stop()
        streamed = [e.message for _, e in store.query("c", EventQuery(limit=500), after=0)[0]]
        assert streamed[:301] == ["before", *map(str, range(300))]  # in order, none lost
        assert store.count() == recorder.written == 2001 - recorder.dropped
        assert isinstance(store, PostgresEventStore)
        store.close()
    finally:
        server.destroy()


def test_the_api_answers_alike_over_either_backend(tmp_path: Path, postgres_dsn: str) -> None:
    """Two real `proxy-hooks api` processes, one over a SQLite file and one over PostgreSQL
    holding the same events: every events call answers the same, byte for byte."""
    config = write_container(tmp_path / "home" / "demo.json")
    events = mixed_events("demo")
    captured = next(e for e in events if e._exchange is not None and e.container == "demo")
    locations: list[str | Path] = [tmp_path / "events.db", postgres_dsn]
    for location in locations:
        store = open_event_store(location)
        store.create()
        store.insert(events)
        if isinstance(store, PostgresEventStore):
            store.close()
    base = "/api/v1/containers/demo/proxy"
    calls: list[tuple[str, dict[str, Any]]] = [
        (f"{base}/events", {}),
        (f"{base}/events", {"limit": "9", "cursor": "100"}),
        (f"{base}/events", {"outcome": "blocked,failed", "service": "s"}),
        (f"{base}/events", {"instance": "proxy-1", "changed": "false"}),
        (f"{base}/events", {"kind": "note"}),
        (f"{base}/events", {"limit": "0"}),  # the same 422
        (f"{base}/events.har", {}),
        (f"{base}/events/{captured.id}/exchange", {}),
        (f"{base}/stats", {"period": "24h"}),
        (f"{base}/stats", {"period": "7d"}),
        (f"{base}/stats", {"period": "30d"}),
    ]
    answers = []
    for location in locations:
        process = ApiProcess(config, events=location)
        try:
            with process.client() as http:
                answer = [(http.get(path, params=params).status_code, http.get(path, params=params).json())
                          for path, params in calls]  # fmt: skip
                with http.stream("GET", f"{base}/events/stream", headers={"Last-Event-ID": "0"}) as stream:
                    ids: list[str] = []
                    for line in stream.iter_lines():
                        if line.startswith("id: "):
                            ids.append(line[4:])
                        if len(ids) == sum(1 for e in events if e.container == "demo"):
                            break
                answer.append((200, ids))
        finally:
            process.stop()
        answers.append(answer)
    for call, sqlite_answer, postgres_answer in zip([*calls, ("stream", {})], *answers, strict=True):
        assert postgres_answer == sqlite_answer, call
    assert answers[0][0][0] == 200 and answers[0][0][1]["data"]["events"]
    assert answers[0][5][0] == 422 and answers[0][7][0] == 200 and answers[0][8][1]["data"]["totalEvents"] > 0
