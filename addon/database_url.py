"""What names a PostgreSQL database rather than files, and how messages may show it.

Known here without importing psycopg: the PostgreSQL backends (addon/store/postgres.py,
addon/event_stores/postgres.py) are an extra, `proxy-hooks[postgresql]`.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")
POSTGRESQL_MISSING = (
    "names a PostgreSQL database, but psycopg is not installed here: pip install 'proxy-hooks[postgresql]'"
)


def is_database_url(location: str | os.PathLike[str]) -> bool:
    """A hooks_config / hooks_events (or --config / --events) value naming PostgreSQL. A Path
    never does: pathlib folds the `//` of a URL."""
    return isinstance(location, str) and location.startswith(DATABASE_URL_SCHEMES)


def describe_dsn(dsn: str) -> str:
    """The URL as answers and logs may show it: who, where and which database; never the
    password, nor query parameters (which may hold one)."""
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError:
        return "postgresql://(a URL that cannot be parsed)"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
