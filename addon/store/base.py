"""What every hooks store is: the seam between the proxy, the API and where containers live.

Two backends implement `HooksSource`: a JSON file per container (`addon.store.file`, the
default) and a row per container in PostgreSQL (`addon.store.postgres`). Callers see the same
snapshots, the same errors and the same `file:v<N>` versions from both; every method is blocking
and thread-safe, so callers on an event loop run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ulid import ULID

from addon.model import HooksFile
from addon.validation import Problem, scripts_root_of

T = TypeVar("T")
Change = Callable[[HooksFile], tuple[HooksFile, T]]
# Told (from whichever thread saw it) when a new version takes effect or a new state is
# rejected: ("reload", version, None) or ("rejected", None, problems).
ChangeListener = Callable[[str, int | None, list[Problem] | None], None]


def new_hook_id() -> str:
    return str(ULID()).lower()


def utc_now() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def etag_of(version: int) -> str:
    return f"file:v{version}"


def document(hooks_file: HooksFile) -> dict[str, Any]:
    """The container's JSON document: only what its authors (or the server) set, in schema order,
    each hook's id first so a person reading it sees which hook is which."""
    data = hooks_file.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    data["file_version"] = hooks_file.file_version
    ordered = {key: data[key] for key in HooksFile.model_fields if key in data}
    ordered["hooks"] = {
        service: [{"id": hook.pop("id"), **hook} if "id" in hook else hook for hook in hooks]
        for service, hooks in ordered.get("hooks", {}).items()
    }
    return ordered


def with_minted_ids(hooks_file: HooksFile) -> HooksFile:
    """Every hook without an id (one written by hand) gets one, created and updated now."""
    now = utc_now()
    hooks = {
        service: [
            hook
            if hook.id is not None
            else hook.model_copy(update={"id": new_hook_id(), "created_at": now, "updated_at": now})
            for hook in service_hooks
        ]
        for service, service_hooks in hooks_file.hooks.items()
    }
    return hooks_file.model_copy(update={"hooks": hooks})


@dataclass(frozen=True)
class Snapshot:
    """One validated version of a container's hooks; never changes once made. `path` is where
    the container lives (its file, or a name for a database row) and only anchors a relative
    scripts_dir."""

    path: Path
    hooks_file: HooksFile

    @property
    def container(self) -> str:
        return self.hooks_file.container

    @property
    def version(self) -> int:
        return self.hooks_file.file_version

    @property
    def etag(self) -> str:
        return etag_of(self.version)

    @property
    def scripts_root(self) -> Path:
        return scripts_root_of(self.path, self.hooks_file.scripts_dir)


class StoreError(Exception):
    pass


class VersionMismatch(StoreError):
    def __init__(self, current: Snapshot):
        super().__init__(f"expected another version; current is {current.etag}")
        self.current = current


class StoreUnusable(StoreError):
    """The container cannot be read now; the last good version stays enforced and writes wait.
    `problems` say why, as field problems."""

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems


class StoreUnavailable(StoreUnusable):
    """Where the containers live cannot be reached (a database that is down or refuses us)."""

    def __init__(self, reason: str):
        super().__init__(reason, [Problem("", reason)])


class HooksSource(Protocol):
    """One container, wherever it is kept."""

    @property
    def path(self) -> Path:
        """Where the container lives, for messages (`file: field: reason` lines)."""
        ...

    # Why the last read failed (None: it did not); the last good version is still served.
    error: StoreUnusable | None
    on_change: ChangeListener | None

    def open(self) -> Snapshot:
        """The first read: a container that cannot be read here is an error for the caller."""
        ...

    def read(self) -> Snapshot:
        """The current version; if it cannot be read now, the last good one (see `error`)."""
        ...

    @property
    def last_good(self) -> Snapshot | None: ...

    def write(self, expected_version: int | None, change: Change[T]) -> tuple[Snapshot, T]:
        """Apply `change` if the container is still `expected_version` (None: any), as version+1.

        Raises VersionMismatch, StoreUnusable, ReadOnlyFile, InvalidInput, or whatever `change`
        raises (then nothing is written)."""
        ...
