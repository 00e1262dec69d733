"""Where events are kept: an embedded SQLite file (the default) or a PostgreSQL database that
many proxies share. `open_event_store` picks one from what hooks_events / --events name."""

from __future__ import annotations

from pathlib import Path

from addon.database_url import POSTGRESQL_MISSING, describe_dsn, is_database_url
from addon.event_stores.base import PERIODS, EventStore

__all__ = ["PERIODS", "EventStore", "open_event_store"]


def open_event_store(location: str | Path) -> EventStore:
    """A PostgreSQL store for a postgresql:// (or postgres://) URL, else a SQLite file there.
    Nothing is opened yet: `create` (the writer) or the first read does."""
    if is_database_url(location):
        try:
            from addon.event_stores.postgres import PostgresEventStore
        except ImportError as exc:
            raise RuntimeError(f"{describe_dsn(str(location))} {POSTGRESQL_MISSING} ({exc})") from None
        return PostgresEventStore(str(location))
    from addon.event_stores.sqlite import SQLiteEventStore

    return SQLiteEventStore(Path(location))
