"""The events store and recorder on a real SQLite file: batching, drops counted exactly,
retention, restarts, a corrupt file."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import sqlite3
from pathlib import Path

import pytest

from addon.event_recorder import EventRecorder
from addon.event_store import SCHEMA, SQLiteEventStore
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


async def test_cursor_paging_walks_every_row_once(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    store.create()
    store.insert([event(n) for n in range(23)])
    seen, cursor = [], None
    while True:
        page, cursor = store.query("c", EventQuery(limit=5, cursor=cursor))
        seen += [e.duration_ms for _, e in page]
        if cursor is None:
            break
    assert seen == [float(n) for n in range(22, -1, -1)]


async def test_hub_wakes_a_waiting_reader(tmp_path: Path) -> None:
    recorder = EventRecorder(SQLiteEventStore(tmp_path / "events.db"))
    assert recorder.start()
    assert recorder.hub is not None
    waiter = asyncio.ensure_future(recorder.hub.wait(30))
    recorder.add(event(1))
    await asyncio.wait_for(waiter, 10)
    recorder.stop()
    wait_for(lambda: recorder.store.count() == 1, 5, "the event to be stored")


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
