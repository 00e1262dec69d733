"""Changes go live without a restart: hand edits to hooks files (watch their folders, re-read
on change), and writes to containers kept in PostgreSQL (LISTEN for their notifications).

The store does the real work (hand-edit detection, keeping the last good version of a broken
file, one warning per new problem); this only tells it when to look.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from watchfiles import awatch

from addon.containers import Containers
from addon.store import HooksStore

log = logging.getLogger(__name__)

# watchfiles waits 1.6 s for a burst of changes to settle by default; edits should be live
# well within 2 s, and our own writes are a single rename.
DEBOUNCE_MS = 150
STEP_MS = 50


async def watch_hooks(containers: Containers, stop: asyncio.Event) -> None:
    """Until `stop`: whichever way the containers' backend tells of a change."""
    if containers.database is not None:
        from addon.store.postgres import PostgresHooksStore, listen  # only with the extra

        rows = {name: store for name, store in containers if isinstance(store, PostgresHooksStore)}
        await listen(containers.database, rows, stop)
    else:
        await watch_hooks_files(containers, stop)


async def watch_hooks_files(containers: Containers, stop: asyncio.Event) -> None:
    stores = {store.path: store for _, store in containers if isinstance(store, HooksStore)}
    # Folders, not files: editors and our own writes replace the file by renaming over it.
    folders = sorted({path.parent for path in stores})
    try:
        async for changes in awatch(
            *folders, stop_event=stop, debounce=DEBOUNCE_MS, step=STEP_MS, recursive=False
        ):
            changed = {Path(path) for _, path in changes}
            for path, store in stores.items():
                if path in changed:
                    await asyncio.to_thread(store.read)
    except Exception as exc:  # the proxy must never go down because of the watcher
        log.warning("proxy-hooks: stopped watching hooks files (%s); edits need a restart", exc)
