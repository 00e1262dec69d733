"""Where events are kept: an embedded SQLite file (the default) or a PostgreSQL database that
many proxies share. `open_event_store` picks one from what hooks_events / --events name."""

from __future__ import annotations

from pathlib import Path

from addon.event_stores.base import PERIODS, EventStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = ["PERIODS", "POSTGRES_SCHEMES", "EventStore", "is_postgres_url", "open_event_store"]


def is_postgres_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_event_store(location: str | Path) -> EventStore:
    """A PostgreSQL store for a postgresql:// (or postgres://) URL, else a SQLite file there.
    Nothing is opened yet: `create` (the writer) or the first read does."""
    if is_postgres_url(location):
        try:
            from addon.event_stores.postgres import PostgresEventStore
        except ImportError as exc:
            raise RuntimeError(
                f"events in PostgreSQL need psycopg ({exc}); install proxy-hooks[postgresql]"
            ) from None
        return PostgresEventStore(str(location))
    from addon.event_stores.sqlite import SQLiteEventStore

    return SQLiteEventStore(Path(location))
