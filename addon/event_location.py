"""Where a hooks configuration's events are kept unless told otherwise: beside its hooks.

`<config folder>/.proxy-hooks/events.db`, where the config folder is the configuration itself
when it is a folder and the file's folder when it is a file. Never the working directory: two
proxies started from one folder with different configurations must not mix their histories.
When the config folder cannot be written (a read-only checkout, a mounted volume), the store is
`$XDG_STATE_HOME/proxy-hooks/<digest of the configuration's path>/events.db` instead
(`~/.local/state` when XDG_STATE_HOME is unset), one per configuration as well.

Writer and reader decide alike, so a standalone API finds what a proxy of the same
configuration records; only the writer creates anything.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATE_FOLDER = ".proxy-hooks"
EVENTS_FILE = "events.db"
DIGEST_CHARS = 16


def config_folder(config: Path) -> Path:
    config = config.absolute()
    return config if config.is_dir() else config.parent


def beside(config: Path) -> Path:
    """The store beside the hooks: `<config folder>/.proxy-hooks/events.db`."""
    return config_folder(config) / STATE_FOLDER / EVENTS_FILE


def state_home() -> Path:
    """$XDG_STATE_HOME, or ~/.local/state when it is unset or not absolute (as the spec says)."""
    given = os.environ.get("XDG_STATE_HOME", "")
    return Path(given) if os.path.isabs(given) else Path.home() / ".local" / "state"


def fallback(config: Path) -> Path:
    """The store of a configuration whose folder is read-only: one folder per configuration
    path under the user's state folder."""
    digest = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:DIGEST_CHARS]
    return state_home() / "proxy-hooks" / digest / EVENTS_FILE


def default_events_path(config: Path, create: bool = False) -> Path:
    """Beside the hooks when that folder can be written, else the fallback. With `create`,
    the `.proxy-hooks` folder is made now (the writer's way of finding out); without, nothing
    is created (a reader's)."""
    path = beside(config)
    folder = path.parent
    if create:
        try:
            folder.mkdir(exist_ok=True)
        except OSError:
            return fallback(config)
    existing = folder if folder.exists() else folder.parent
    return path if os.access(existing, os.W_OK | os.X_OK) else fallback(config)
