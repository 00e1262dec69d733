"""The hooks store: where containers live and how a versioned write reaches them.

`base` is the interface every backend answers to, `file` the hooks files on disk (the default),
`postgres` the containers kept in PostgreSQL. The names callers use are re-exported here, so
`from addon.store import HooksStore, Snapshot` reads as it always did.
"""

from addon.database_url import is_database_url
from addon.store.base import (
    Change,
    ChangeListener,
    HooksSource,
    Snapshot,
    StoreError,
    StoreUnavailable,
    StoreUnusable,
    VersionMismatch,
    document,
    etag_of,
    new_hook_id,
    utc_now,
)
from addon.store.file import (
    FileUnusable,
    HooksStore,
    ReadOnlyFile,
    content_hash,
    render,
    unwritable,
)

__all__ = [
    "Change",
    "ChangeListener",
    "FileUnusable",
    "HooksSource",
    "HooksStore",
    "ReadOnlyFile",
    "Snapshot",
    "StoreError",
    "StoreUnavailable",
    "StoreUnusable",
    "VersionMismatch",
    "content_hash",
    "document",
    "etag_of",
    "is_database_url",
    "new_hook_id",
    "render",
    "unwritable",
    "utc_now",
]
