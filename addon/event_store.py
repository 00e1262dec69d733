"""The SQLite events store, where it was before the stores got their own package
(addon/event_stores/): existing imports keep working."""

from addon.event_stores.base import PERIODS
from addon.event_stores.sql import BUCKETS, PRUNE_CHUNK, RECENT_CLIENTS
from addon.event_stores.sqlite import ADDED_COLUMNS, SCHEMA, SQLiteEventStore, is_corrupt, migrate

__all__ = [
    "ADDED_COLUMNS",
    "BUCKETS",
    "PERIODS",
    "PRUNE_CHUNK",
    "RECENT_CLIENTS",
    "SCHEMA",
    "SQLiteEventStore",
    "is_corrupt",
    "migrate",
]
