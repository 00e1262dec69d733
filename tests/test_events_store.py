"""The events store and recorder on a real SQLite file: batching, drops counted exactly,
retention, restarts, a corrupt file."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from addon.changes import RequestChanges, RunChanges
from addon.event_recorder import EventRecorder
from addon.event_store import SCHEMA, SQLiteEventStore, migrate
from addon.events import Event, EventQuery, iso_utc
from tests.harness import set_aside, wait_for


def event(n: int, **fields: object) -> Event:
    data = {
        "container": "c",
        "service": "s",
        "hook_id": f"h{n % 3}",
        "outcome": "continued",
        "duration_ms": n,
    }
    return Event.model_validate({**data, **fields})


async def test_a_flood_is_recorded_completely(tmp_path: Path) -> None:
    recorder = EventRecorder(SQLiteEventStore(tmp_path / "events.db"))
    assert recorder.start()
    for n in range(5000):
        recorder.add(event(n))
    recorder.stop()
    assert recorder.dropped == 0 and recorder.written == 5000
    assert recorder.store.count() == 5000


async def test_a_tiny_queue_drops_and_counts_exactly(tmp_path: Path) -> None:
    recorder = EventRecorder(SQLiteEventStore(tmp_path / "events.db"), queue_size=10)
    assert recorder.start()
    for n in range(5000):
        recorder.add(event(n))  # never waits: what does not fit is dropped
    recorder.stop()
    assert recorder.dropped > 0
    assert recorder.written + recorder.dropped == 5000
    assert recorder.store.count() == recorder.written


async def test_retention_keeps_the_newest_rows_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    recorder = EventRecorder(SQLiteEventStore(path), max_rows=100)
    assert recorder.start()
    for n in range(250):
        recorder.add(event(n, path=f"/{n}"))
    recorder.stop()  # stopping flushes and applies retention
    reopened = SQLiteEventStore(path)
    page, _ = reopened.query("c", EventQuery(limit=500))
    assert [e.path for _, e in page] == [f"/{n}" for n in range(249, 149, -1)]


async def test_retention_by_age(tmp_path: Path) -> None:
    recorder = EventRecorder(SQLiteEventStore(tmp_path / "events.db"), max_age=dt.timedelta(days=1))
    assert recorder.start()
    old = iso_utc(dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    for n in range(10):
        recorder.add(event(n, ts=old))
    recorder.add(event(99))
    recorder.stop()
    assert [e.duration_ms for _, e in recorder.store.query("c", EventQuery())[0]] == [99.0]


async def test_a_corrupt_file_is_moved_aside_and_recording_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"this is not a database" * 100)
    recorder = EventRecorder(SQLiteEventStore(path))
    with caplog.at_level(logging.WARNING):
        assert recorder.start()
    assert "was corrupt" in caplog.text and recorder.error is None and recorder.recovered == 1
    (aside,) = set_aside(tmp_path)
    assert aside.read_bytes().startswith(b"this is not a database")  # kept for whoever looks
    recorder.add(event(1))
    recorder.stop()
    assert recorder.dropped == 0 and recorder.store.count() == 1


async def test_an_unusable_store_is_an_error_and_runs_are_counted_until_it_is_back(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.mkdir()  # a folder where the file should be: nothing can be created there
    recorder = EventRecorder(SQLiteEventStore(path))
    assert not recorder.start()
    assert recorder.error is not None and "unusable" in recorder.error
    recorder.add(event(1))
    wait_for(lambda: recorder.dropped == 1, 10, "the run to be dropped and counted")
    path.rmdir()
    wait_for(lambda: recorder.error is None, 10, "the writer to create the store")
    recorder.add(event(2))
    recorder.stop()
    assert [e.duration_ms for _, e in recorder.store.query("c", EventQuery())[0]] == [2.0]


async def test_a_deleted_store_is_created_anew(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    recorder = EventRecorder(SQLiteEventStore(path))
    assert recorder.start()
    recorder.add(event(1))
    wait_for(lambda: recorder.written == 1, 10, "the first event to be written")
    for leftover in set_aside(tmp_path, "events.db*"):
        leftover.unlink()
    wait_for(lambda: recorder.recovered == 1 and path.exists(), 10, "the store to be created anew")
    recorder.add(event(2))
    recorder.stop()
    assert recorder.dropped == 0
    assert [e.duration_ms for _, e in recorder.store.query("c", EventQuery())[0]] == [2.0]
    assert "deleted or replaced" in (recorder.last_recovery or "")


async def test_hub_wakes_a_waiting_reader(tmp_path: Path) -> None:
    recorder = EventRecorder(SQLiteEventStore(tmp_path / "events.db"))
    assert recorder.start()
    assert recorder.hub is not None
    waiter = asyncio.ensure_future(recorder.hub.wait(30))
    recorder.add(event(1))
    await asyncio.wait_for(waiter, 10)
    recorder.stop()
    wait_for(lambda: recorder.store.count() == 1, 5, "the event to be stored")


# --- a file written before `client`/`changed` existed keeps working ---

# The table as the first release created it, and an event's JSON as it wrote it.
OLD_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL,
    kind TEXT NOT NULL, container TEXT NOT NULL, service TEXT, hook_id TEXT, outcome TEXT,
    blocked INTEGER NOT NULL DEFAULT 0, duration_ms REAL, data TEXT NOT NULL
);
CREATE INDEX events_by_container ON events (container, seq);
CREATE INDEX events_by_hook ON events (container, hook_id, seq);
CREATE INDEX events_by_time ON events (container, ts);
"""
NEW_FIELDS = {"changes", "message", "data"}


def old_store(path: Path, events: list[Event]) -> list[dict[str, object]]:
    """An events file of the first schema holding `events`, as that version wrote them."""
    written = [e.model_dump(mode="json", exclude=NEW_FIELDS) for e in events]
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.executemany(
        "INSERT INTO events (id, ts, kind, container, service, hook_id, outcome, blocked, duration_ms, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (d["id"], d["ts"], d["kind"], d["container"], d["service"], d["hook_id"], d["outcome"],
             int(bool(d["blocked"])), d["duration_ms"], json.dumps(d))
            for d in written
        ],
    )  # fmt: skip
    db.commit()
    db.close()
    return written


async def test_an_old_schema_file_is_migrated_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old = old_store(
        path,
        [
            event(1, kind="run", client="10.0.0.1", ts="2000-01-01T00:00:00.000Z"),
            event(2, kind="run", client="10.0.0.2", outcome="modified"),
            Event(kind="config_reload", container="c", file_version=3),
        ],
    )
    recorder = EventRecorder(SQLiteEventStore(path), max_age=None)  # keeps the year-2000 run
    assert recorder.start()  # adds the columns (and fills `client` from the stored events)
    changed = RunChanges(request=RequestChanges(headers_set=["x-a"]))
    recorder.add(event(3, client="10.0.0.3", outcome="modified", changes=changed))
    recorder.add(event(4, client="10.0.0.1"))
    recorder.add(Event(kind="note", container="c", message="after the upgrade", data={"k": 1}))
    recorder.stop()
    store = recorder.store
    page, _ = store.query("c", EventQuery(limit=500))
    stored = [e.model_dump(mode="json") for _, e in page][::-1]
    assert [{k: v for k, v in e.items() if k not in NEW_FIELDS} for e in stored[:3]] == old
    assert all(e[k] is None for e in stored[:3] for k in NEW_FIELDS)
    assert stored[3]["changes"] == changed.model_dump(mode="json")
    assert (stored[5]["kind"], stored[5]["data"]) == ("note", {"k": 1})

    def ids(**filters: object) -> list[str]:
        return [e.id for _, e in store.query("c", EventQuery.model_validate({"limit": 500, **filters}))[0]]

    # Runs recorded before `changes` existed are unknown: in neither filter.
    assert ids(changed=True) == [stored[3]["id"]]
    assert ids(changed=False) == [stored[4]["id"]]
    figures = store.stats("c", "30d")
    assert figures["eventsByKind"] == {
        "run": 3,
        "dry_run": 0,
        "config_reload": 1,
        "config_rejected": 0,
        "note": 1,
    }
    assert figures["notes"] == 1 and figures["totalEvents"] == 3  # the 2000-01-01 run is outside 30d
    assert [(c["address"], c["runs"]) for c in figures["recentClients"]] == [
        ("10.0.0.1", 1),  # event 4; event 1 is outside the period
        ("10.0.0.3", 1),
        ("10.0.0.2", 1),  # the old row's client, filled in by the migration
    ]
    # Opening it again (a restart, or a second process) migrates nothing twice.
    store.create()
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
    db.close()
    assert columns.count("client") == columns.count("changed") == 1


def test_two_processes_opening_an_old_file_at_once_both_succeed(tmp_path: Path) -> None:
    """The recorder of a proxy and a standalone API reader start together on an old file: the
    columns are added once, inside one write transaction, and both open it."""
    path = tmp_path / "events.db"
    old_store(path, [event(n, client=f"10.0.0.{n}") for n in range(200)])
    barrier = threading.Barrier(4)

    def open_it() -> None:
        barrier.wait()
        SQLiteEventStore(path).create()

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(open_it) for _ in range(4)]:
            future.result()
    figures = SQLiteEventStore(path).stats("c", "24h")
    assert figures["totalEvents"] == 200 and len(figures["recentClients"]) == 10


def test_clients_are_filled_where_sqlite_lacks_its_json_functions(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old_store(path, [event(1, client="10.0.0.9"), event(2, client="10.0.0.8")])
    db = sqlite3.connect(path, isolation_level=None)

    def missing(*_: object) -> None:
        raise sqlite3.OperationalError("no such function: json_extract")

    db.create_function("json_extract", 2, missing)  # shadows the built-in one on this connection
    migrate(db)
    db.close()
    clients = SQLiteEventStore(path).stats("c", "24h")["recentClients"]
    assert sorted(c["address"] for c in clients) == ["10.0.0.8", "10.0.0.9"]
@pytest.mark.parametrize(
    ("period", "step", "buckets"), [("24h", dt.timedelta(hours=1), 25), ("7d", dt.timedelta(days=1), 8)]
)
def test_the_stats_timeline_counts_runs_per_bucket_and_outcome(
    tmp_path: Path, period: str, step: dt.timedelta, buckets: int
) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    store.create()
    now = dt.datetime.now(dt.UTC)
    placed = [(now, "blocked"), (now, "blocked"), (now, "continued"), (now - 3 * step, "failed")]
    store.insert([event(n, ts=iso_utc(moment), outcome=o) for n, (moment, o) in enumerate(placed)])
    store.insert([event(9, ts=iso_utc(now - 40 * step), outcome="blocked")])  # before the period
    store.insert([event(10, ts=iso_utc(now), outcome="blocked", kind="dry_run")])  # not a run
    timeline = store.stats("c", period)["timeline"]
    assert len(timeline) in (buckets, buckets + 1)  # every bucket, the partial first one included
    starts = [dt.datetime.fromisoformat(b["start"].replace("Z", "+00:00")) for b in timeline]
    assert all(later - earlier == step for earlier, later in itertools.pairwise(starts))
    [i] = [i for i, start in enumerate(starts) if start <= now < start + step]  # the bucket of `now`
    last, three_back = timeline[i], timeline[i - 3]
    assert last["byOutcome"]["blocked"] == 2 and last["byOutcome"]["continued"] == 1 and last["total"] == 3
    assert three_back["byOutcome"]["failed"] == 1 and three_back["total"] == 1
    assert sum(b["total"] for b in timeline) == 4


def test_a_store_from_before_captured_exchanges_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old_schema = SCHEMA.replace(",\n    exchange TEXT", "")
    assert "exchange" not in old_schema
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
        db.execute(
            "INSERT INTO events (id, ts, kind, container, data) VALUES (?, ?, 'run', 'c', ?)",
            (
                "old",
                "2026-01-01T00:00:00.000Z",
                event(1, id="old", ts="2026-01-01T00:00:00.000Z").model_dump_json(),
            ),
        )
    store = SQLiteEventStore(path)
    store.create()
    store.insert([event(2)])
    assert [e.id for _, e in store.query("c", EventQuery())[0]][-1] == "old"  # kept
    found = store.exchange("c", "old")
    assert found is not None and found[1] is None
