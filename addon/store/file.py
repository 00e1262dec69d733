"""The file backend of the hooks store: one container hooks file on disk, versioned, atomic,
safe across processes.

Every method here is blocking (file I/O, fsync, an OS lock) and thread-safe: callers on an
event loop run them with `asyncio.to_thread`.

- A write is a transaction under an exclusive `flock` on a lock file beside the hooks file:
  re-read, check the caller's version, apply the change, validate the whole file, write a temp
  file in the same folder, fsync it, rename it over the original, fsync the folder.
- The lock file also records the version and the content hash of the last state any of our
  processes saw or wrote. A hand edit that changes the content but not `file_version` (or moves
  it backwards) is therefore seen by every process, and becomes a new version, so a client
  holding an old ETag can never silently overwrite it.
- A hook without an id (a hand-written file) gets one minted, written back as a normal write;
  if the file cannot be written, the ids live in memory and a warning says so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from addon.model import HooksFile
from addon.store.base import (
    Change,
    ChangeListener,
    Snapshot,
    StoreError,
    StoreUnusable,
    T,
    VersionMismatch,
    document,
    with_minted_ids,
)
from addon.validation import (
    FileRefs,
    InvalidInput,
    Problem,
    file_problems,
    json_object,
    load_hooks_file,
    problem_lines,
    scripts_root_of,
)
from addon.versions import with_versions

log = logging.getLogger(__name__)

# Temp files left by a writer that was killed mid-write are removed once they are this old.
STALE_TEMP_SECONDS = 60.0


def content_hash(doc: dict[str, Any]) -> str:
    """What a document says, minus its version: whitespace and key order do not count."""
    content = {key: value for key, value in doc.items() if key != "file_version"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def render(doc: dict[str, Any]) -> bytes:
    # pydantic_core's encoder: the stdlib's is pure Python once `indent` is set, ~10x slower.
    return to_json(doc, indent=2) + b"\n"


class FileUnusable(StoreUnusable):
    """The file on disk is missing, unreadable or invalid; writes wait until it is fixed."""

    def __init__(self, path: Path, problems: list[Problem]):
        super().__init__(f"{path}: " + "; ".join(map(str, problems)), problems)
        self.path = path


class ReadOnlyFile(StoreError):
    """The file or its folder cannot be written (permissions, a read-only mount, a full disk);
    the message says what to fix."""

    def __init__(self, message: str, code: str = "READ_ONLY"):
        super().__init__(message)
        self.code = code


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def unwritable(path: Path, exc: OSError | None = None) -> ReadOnlyFile:
    """Why `path` cannot be written, and what to do about it."""
    folder = path.parent
    if exc is not None and exc.errno in _NO_SPACE:
        return ReadOnlyFile(
            f"cannot write {path.name}: no space left on the device holding {folder}; free some, then retry",
            "NO_SPACE",
        )
    if exc is not None and exc.errno == errno.EROFS:
        return ReadOnlyFile(
            f"cannot write {path.name}: {folder} is on a read-only file system; "
            "hooks cannot be changed through the API until it is mounted read-write"
        )
    reason = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
    return ReadOnlyFile(
        f"{path.name} is read-only{reason}: hooks cannot be changed through the API. To allow it, make "
        f"the file and its folder writable by the user running proxy-hooks (chmod u+w {path.name} "
        "and its folder), then retry"
    )


@dataclass(frozen=True)
class _Recorded:
    version: int
    digest: str


class HooksStore:
    """One container's hooks file."""

    def __init__(self, path: Path):
        self.path = path.absolute()
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._mutex = threading.Lock()  # writers in this process, before the OS lock
        self._parse_mutex = threading.Lock()
        # (digest of the raw bytes, the snapshot parsed from them), swapped as one reference so
        # a lock-free reader never pairs new bytes with an old snapshot.
        self._cache: tuple[str | None, Snapshot] | None = None
        self.error: StoreUnusable | None = None
        self.on_change: ChangeListener | None = None

    # --- reading ---

    def open(self) -> Snapshot:
        """The first read: an invalid or missing file here is an error for the caller."""
        self._remove_stale_temp_files()
        snapshot = self.read()
        if self.error is not None:
            raise self.error
        return snapshot

    def read(self) -> Snapshot:
        """The current version. If the file became invalid, the last good one (see `error`).

        Unchanged bytes cost one read and a hash. Changed bytes that the lock file's record
        vouches for (a write by one of our processes) are parsed without taking the lock; only
        hand edits and missing ids go through the lock, to be written back as a new version.
        """
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            return self._fail([Problem("", f"cannot read: {exc.strerror or exc}")])
        digest = _digest(raw)
        cache = self._cache
        if cache is not None and cache[0] == digest:
            return cache[1]
        with self._parse_mutex:  # threads that see the same new bytes parse them once
            cache = self._cache
            if cache is not None and cache[0] == digest:
                return cache[1]
            try:
                doc = json_object(raw)
                hooks_file = load_hooks_file(self.path, doc)
            except InvalidInput as exc:
                return self._fail(exc.problems)
            if _peek_recorded(self.lock_path) == _Recorded(hooks_file.file_version, content_hash(doc)):
                return self._accept(digest, hooks_file)
            with self._mutex:
                try:
                    with self._locked() as lock_fd:
                        return self._reconcile(lock_fd)
                except OSError as exc:  # no lock to be had (the folder went away?): read as is
                    log.warning("%s: cannot take the lock: %s", self.lock_path, exc.strerror or exc)
                    return self._reconcile(None)

    @property
    def last_good(self) -> Snapshot | None:
        return None if self._cache is None else self._cache[1]

    # --- writing ---

    def write(self, expected_version: int | None, change: Change[T]) -> tuple[Snapshot, T]:
        """Apply `change` to the current file if it is still `expected_version` (None: whichever
        version is current), as version+1.

        Raises VersionMismatch, FileUnusable, ReadOnlyFile, InvalidInput, or whatever `change`
        raises (then nothing is written).
        """
        try:
            with self._mutex, self._locked() as lock_fd:
                if lock_fd is None or not self._writable():
                    raise unwritable(self.path)
                current = self._reconcile(lock_fd)
                if self.error is not None:
                    raise self.error
                if expected_version is not None and current.version != expected_version:
                    raise VersionMismatch(current)
                changed, result = change(current.hooks_file)
                changed = with_versions(current.hooks_file, changed).model_copy(
                    update={"file_version": current.version + 1}
                )
                problems = file_problems(
                    FileRefs.of(changed), scripts_root_of(self.path, changed.scripts_dir)
                )
                if problems:
                    raise InvalidInput(problems)
                return self._commit(lock_fd, changed), result
        except OSError as exc:  # the lock, the temp file, the rename, the fsyncs
            raise unwritable(self.path, exc) from None

    def _writable(self) -> bool:
        """The file and its folder (the temp file and the lock live there)."""
        return _writable(self.path) and _writable(self.path.parent)

    # --- internals ---

    def _reconcile(self, lock_fd: int | None) -> Snapshot:
        """Read the file under the lock; fold in hand edits and missing ids as a new version."""
        try:
            raw = self.path.read_bytes()
            doc = json_object(raw)
            hooks_file = load_hooks_file(self.path, doc)
        except OSError as exc:
            return self._fail([Problem("", f"cannot read: {exc.strerror or exc}")])
        except InvalidInput as exc:
            return self._fail(exc.problems)
        recorded = _read_recorded(lock_fd)
        digest = content_hash(doc)
        version = hooks_file.file_version
        hand_edited = recorded is not None and (
            version < recorded.version or (version == recorded.version and digest != recorded.digest)
        )
        missing_ids = any(hook.id is None for hooks in hooks_file.hooks.values() for hook in hooks)
        if hand_edited or missing_ids:
            # Either way this content is new to every client: it gets the next version.
            version = max(version, recorded.version if recorded else 0) + 1
            if hand_edited:
                log.warning("%s was edited without raising file_version; now version %d", self.path, version)
            hooks_file = with_minted_ids(hooks_file).model_copy(update={"file_version": version})
            if lock_fd is not None and self._writable():
                try:
                    return self._commit(lock_fd, hooks_file)
                except OSError as exc:
                    log.warning("%s: %s", self.path, unwritable(self.path, exc))
            log.warning(
                "%s is read-only: minted hook ids and version %d live in memory only", self.path, version
            )
        elif recorded != _Recorded(version, digest) and lock_fd is not None:
            with contextlib.suppress(OSError):  # only a hint for the next reader
                _write_recorded(lock_fd, _Recorded(version, digest))
        return self._accept(_digest(raw), hooks_file)

    def _commit(self, lock_fd: int, hooks_file: HooksFile) -> Snapshot:
        doc = document(hooks_file)
        raw = render(doc)
        _atomic_write(self.path, raw)
        _write_recorded(lock_fd, _Recorded(hooks_file.file_version, content_hash(doc)))
        return self._accept(_digest(raw), hooks_file)

    def _accept(self, raw_digest: str, hooks_file: HooksFile) -> Snapshot:
        snapshot = Snapshot(self.path, hooks_file)
        previous = self.last_good
        self._cache = (raw_digest, snapshot)
        if self.error is not None:
            log.info("%s is valid again (version %d)", self.path, snapshot.version)
        self.error = None
        if previous is not None and previous.version != snapshot.version and self.on_change:
            self.on_change("reload", snapshot.version, None)
        return snapshot

    def _fail(self, problems: list[Problem]) -> Snapshot:
        error = FileUnusable(self.path, problems)
        if self.error is None or self.error.problems != problems:
            kept = (
                "" if self._cache is None else f"; keeping the last good version ({self._cache[1].version})"
            )
            lines = "\n  ".join(problem_lines(self.path, problems))
            log.warning("%s is invalid%s:\n  %s", self.path, kept, lines)
            if self.on_change and self._cache is not None:
                self.on_change("rejected", None, problems)
        self.error = error
        if self._cache is None:
            raise error
        # Forget the bytes, keep the snapshot: the next read looks at the file again.
        self._cache = (None, self._cache[1])
        return self._cache[1]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int | None]:
        """An exclusive OS lock shared with other processes; None if it cannot be created
        (a read-only folder), in which case nothing will be written either."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM, *_NO_SPACE):
                yield None
                return
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _remove_stale_temp_files(self) -> None:
        cutoff = time.time() - STALE_TEMP_SECONDS
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()


def _writable(path: Path) -> bool:
    """Honour `chmod a-w` even for root, for whom os.access always says yes."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(path, os.W_OK)


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _atomic_write(path: Path, raw: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, path.stat().st_mode & 0o777)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(raw)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_recorded(lock_fd: int | None) -> _Recorded | None:
    if lock_fd is None:
        return None
    try:
        data = json.loads(os.pread(lock_fd, 4096, 0) or b"null")
        return _Recorded(int(data["file_version"]), str(data["content_sha256"]))
    except (ValueError, TypeError, KeyError):
        return None  # empty (new), torn by a crash, or caught mid-write: no record


def _peek_recorded(lock_path: Path) -> _Recorded | None:
    """The record, read without the lock: only ever trusted when it matches the file exactly."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_recorded(fd)
    finally:
        os.close(fd)


def _write_recorded(lock_fd: int, recorded: _Recorded) -> None:
    data = json.dumps({"file_version": recorded.version, "content_sha256": recorded.digest}).encode()
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, data, 0)
