"""The containers a process serves: one hooks file each, from a file or a folder of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from addon.store import FileUnusable, HooksStore, Snapshot
from addon.validation import InvalidInput, json_object, load_hooks_file


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


def _problem_lines(path: Path, exc: InvalidInput | FileUnusable) -> list[str]:
    return [f"{path}: {problem}" for problem in exc.problems]


class Containers:
    def __init__(self, stores: dict[str, HooksStore]):
        self._stores = stores

    @classmethod
    def load(cls, path: Path) -> Containers:
        """Open every hooks file under `path`; ConfigError lists what is wrong with any of them."""
        if not path.exists():
            raise ConfigError([f"{path}: no such file or folder"])
        files = hooks_files(path)
        if not files:
            raise ConfigError([f"{path}: no *.json hooks files in this folder"])
        stores: dict[str, HooksStore] = {}
        lines: list[str] = []
        for file in files:
            store = HooksStore(file)
            try:
                snapshot = store.open()
            except FileUnusable as exc:
                lines += _problem_lines(file, exc)
                continue
            if snapshot.container in stores:
                other = stores[snapshot.container].path
                lines.append(f"{file}: container: {snapshot.container!r} is already served from {other}")
                continue
            stores[snapshot.container] = store
        if lines:
            raise ConfigError(lines)
        return cls(stores)

    def get(self, container: str) -> HooksStore | None:
        return self._stores.get(container)

    def __iter__(self) -> Iterator[tuple[str, HooksStore]]:
        return iter(sorted(self._stores.items()))


def check(path: Path) -> tuple[list[str], list[str]]:
    """Validate hooks files without changing them: (problem lines, one summary line per good file)."""
    if not path.exists():
        return [f"{path}: no such file or folder"], []
    problems: list[str] = []
    good: list[str] = []
    seen: dict[str, Path] = {}
    for file in hooks_files(path):
        try:
            hooks_file = load_hooks_file(file, json_object(file.read_bytes()))
        except OSError as exc:
            problems.append(f"{file}: cannot read: {exc.strerror or exc}")
            continue
        except InvalidInput as exc:
            problems += _problem_lines(file, exc)
            continue
        if hooks_file.container in seen:
            problems.append(
                f"{file}: container: {hooks_file.container!r} is also defined in {seen[hooks_file.container]}"
            )
            continue
        seen[hooks_file.container] = file
        count = sum(len(hooks) for hooks in hooks_file.hooks.values())
        good.append(
            f"{file}: ok (container {hooks_file.container!r}, version {hooks_file.file_version}, "
            f"{len(hooks_file.services)} services, {count} hooks)"
        )
    return problems, good


def read_only_snapshots(path: Path) -> list[Snapshot]:
    """Every valid container under `path`, as on disk, without writing anything (no minted ids,
    no version bumps): for offline tools. ConfigError lists what is wrong."""
    problems, _ = check(path)
    if problems:
        raise ConfigError(problems)
    return [
        Snapshot(file, load_hooks_file(file, json_object(file.read_bytes()))) for file in hooks_files(path)
    ]
