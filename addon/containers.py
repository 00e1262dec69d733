"""The containers a process serves: one hooks file each, from a file or a folder of them, or
the containers kept in a PostgreSQL database (`postgresql://…`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from addon.catalog import deployment_problems
from addon.database_url import POSTGRESQL_MISSING
from addon.model import HooksFile
from addon.store import FileUnusable, HooksSource, HooksStore, Snapshot, StoreError, is_database_url

if TYPE_CHECKING:
    from addon.store.postgres import Database
from addon.validation import (
    InvalidInput,
    Problem,
    in_order,
    inspect_hooks_file,
    json_object,
    load_hooks_file,
    problem_lines,
)


class ConfigError(Exception):
    """Every problem with the configuration, one `file: field: reason` line each."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def hooks_files(path: Path) -> list[Path]:
    """A single file, or every visible `*.json` in a folder (one container each)."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
    return [path]


class Containers:
    def __init__(self, stores: dict[str, HooksSource], database: Database | None = None):
        self._stores = stores
        self.database = database  # where they live when that is PostgreSQL

    @classmethod
    def load(cls, config: str | Path) -> Containers:
        """Open every container `config` names: a hooks file, a folder of them, or a PostgreSQL
        DSN. ConfigError lists what is wrong with any of them."""
        if is_database_url(config):
            return cls._load_database(str(config))
        path = Path(config)
        if not path.exists():
            raise ConfigError([f"{path}: no such file or folder"])
        files = hooks_files(path)
        if not files:
            raise ConfigError([f"{path}: no *.json hooks files in this folder"])
        stores: dict[str, HooksSource] = {}
        lines: list[str] = []
        for file in files:
            store = HooksStore(file)
            try:
                snapshot = store.open()
            except FileUnusable as exc:
                lines += problem_lines(file, exc.problems)
                continue
            if snapshot.container in stores:
                other = stores[snapshot.container].path
                lines.append(f"{file}: container: {snapshot.container!r} is already served from {other}")
                continue
            stores[snapshot.container] = store
        if lines:
            raise ConfigError(lines)
        return cls(stores)

    @classmethod
    def _load_database(cls, dsn: str) -> Containers:
        """Every container kept in the database. It must be reachable now: a proxy never starts
        without a good version of each container to enforce."""
        try:
            from addon.store.postgres import Database
        except ImportError:
            raise ConfigError([f"{dsn.split(':', 1)[0]}://…: {POSTGRESQL_MISSING}"]) from None
        database = Database(dsn)
        try:
            return cls(_database_stores(database), database)
        except ConfigError:
            database.close()
            raise

    def get(self, container: str) -> HooksSource | None:
        return self._stores.get(container)

    def __iter__(self) -> Iterator[tuple[str, HooksSource]]:
        return iter(sorted(self._stores.items()))

    def close(self) -> None:
        if self.database is not None:
            self.database.close()


def _database_stores(database: Database) -> dict[str, HooksSource]:
    """A store per container in `database`, each read once; ConfigError says what stops that."""
    from addon.store.postgres import PostgresHooksStore

    try:
        database.check_schema()
        names = database.container_names()
    except StoreError as exc:
        raise ConfigError([str(exc)]) from None
    if not names:
        hint = "add some with `proxy-hooks db import --config DSN FILE...`"
        raise ConfigError([f"{database.where}: no containers yet; {hint}"])
    stores: dict[str, HooksSource] = {}
    lines: list[str] = []
    for name in names:
        store = PostgresHooksStore(database, name)
        try:
            store.open()
        except StoreError as exc:
            problems = getattr(exc, "problems", None) or []
            lines += problem_lines(store.path, problems) if problems else [str(exc)]
            continue
        stores[name] = store
    if lines:
        raise ConfigError(lines)
    return stores


@dataclass
class CheckReport:
    """What `check` found under a path."""

    good: list[str] = field(default_factory=list)  # a summary line per file without problems
    errors: list[str] = field(default_factory=list)  # every problem, file by file, in field order
    # The subset that stops a proxy loading a file; a script not (yet) deployed does not: the
    # file loads and that hook fails as its failure_mode says, so a half-deployed folder never
    # stops the proxy.
    blocking: list[str] = field(default_factory=list)


def check(path: Path) -> CheckReport:
    """Validate hooks files without changing them, reporting every problem of every file."""
    report = CheckReport()
    files = hooks_files(path) if path.exists() else []
    if not files:
        missing = "no such file or folder" if not path.exists() else "no *.json hooks files in this folder"
        report.errors.append(f"{path}: {missing}")
        report.blocking.append(f"{path}: {missing}")
    seen: dict[str, Path] = {}
    for file in files:
        blocking, scripts, hooks_file = _check_file(file, seen)
        report.blocking += problem_lines(file, blocking)
        report.errors += problem_lines(file, in_order(blocking + scripts))
        if hooks_file is not None and not blocking and not scripts:
            count = sum(len(hooks) for hooks in hooks_file.hooks.values())
            report.good.append(
                f"{file}: ok (container {hooks_file.container!r}, version {hooks_file.file_version}, "
                f"{len(hooks_file.services)} services, {count} hooks)"
            )
    return report


def _check_file(file: Path, seen: dict[str, Path]) -> tuple[list[Problem], list[Problem], HooksFile | None]:
    """(problems that stop the file loading, problems with its scripts as deployed, the model)."""
    try:
        inspected = inspect_hooks_file(file, json_object(file.read_bytes()))
    except OSError as exc:
        return [Problem("", f"cannot read: {exc.strerror or exc}")], [], None
    except InvalidInput as exc:  # not JSON, or not an object
        return exc.problems, [], None
    blocking = list(inspected.problems)
    container = inspected.refs.container
    if container is not None and not any(p.field == "container" for p in blocking):
        if container in seen:
            blocking.append(Problem("container", f"{container!r} is also defined in {seen[container]}"))
        else:
            seen[container] = file
    return blocking, deployment_problems(inspected.refs, inspected.scripts_root), inspected.hooks_file


def read_only_snapshots(path: Path) -> list[Snapshot]:
    """Every valid container under `path`, as on disk, without writing anything (no minted ids,
    no version bumps): for offline tools. ConfigError lists what is wrong."""
    blocking = check(path).blocking
    if blocking:
        raise ConfigError(blocking)
    return [
        Snapshot(file, load_hooks_file(file, json_object(file.read_bytes()))) for file in hooks_files(path)
    ]
