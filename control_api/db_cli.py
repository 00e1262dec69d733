"""`proxy-hooks db init|import|export --config DSN`: the containers kept in PostgreSQL.

`init` creates or migrates the schema (safe to run again, and from several machines at once);
`import` stores hooks files as containers (a new container, or a new version of one, announced
to every proxy like any write); `export` writes every container back out as a hooks file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from addon.containers import ConfigError, read_only_snapshots
from addon.database_url import POSTGRESQL_MISSING
from addon.model import HooksFile
from addon.store import Snapshot, StoreError, document, is_database_url, render
from addon.validation import problem_lines

if TYPE_CHECKING:  # psycopg is an extra: imported when a db command runs
    from addon.store.postgres import Database

DSN_HELP = "the database: postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME (postgres:// too)"


def database_url(value: str) -> str:
    if not is_database_url(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a postgresql:// (or postgres://) URL")
    return value


def add_commands(commands: Any) -> None:
    db = commands.add_parser("db", help="the hooks kept in PostgreSQL: init, import, export")
    actions = db.add_subparsers(dest="db_command", required=True, title="db commands")
    init = actions.add_parser("init", help="create or migrate the schema (safe to repeat)")
    init.add_argument("--config", required=True, type=database_url, help=DSN_HELP)
    load = actions.add_parser("import", help="store hooks files as containers (new, or a new version)")
    load.add_argument("--config", required=True, type=database_url, help=DSN_HELP)
    load.add_argument("files", nargs="+", type=Path, metavar="FILE", help="container hooks files")
    dump = actions.add_parser("export", help="write every container out as DIR/<container>.json")
    dump.add_argument("--config", required=True, type=database_url, help=DSN_HELP)
    dump.add_argument("dir", type=Path, metavar="DIR", help="the folder to write (created if missing)")


def run(args: argparse.Namespace) -> int:
    try:
        from addon.store.postgres import Database
    except ImportError:
        print(f"proxy-hooks db {args.db_command}: --config {POSTGRESQL_MISSING}", file=sys.stderr)
        return 2
    database = Database(args.config)
    try:
        if args.db_command == "init":
            before, now = database.init()
            state = f"created (version {now})" if before == 0 else f"migrated from {before} to {now}"
            print(f"{database.where}: hooks schema {state if before != now else f'up to date ({now})'}")
            return 0
        database.check_schema()
        return _import(database, args.files) if args.db_command == "import" else _export(database, args.dir)
    except StoreError as exc:
        print(f"proxy-hooks db {args.db_command}: {exc}", file=sys.stderr)
        return 1
    finally:
        database.close()


def _import(database: Database, files: list[Path]) -> int:
    """Every file is checked before any is stored: a bad file stores nothing."""
    from addon.store.postgres import PostgresHooksStore, absolute_scripts_problems

    snapshots: list[Snapshot] = []
    lines: list[str] = []
    for file in files:
        try:
            found = read_only_snapshots(file)
        except ConfigError as exc:
            lines += exc.lines
            continue
        for snapshot in found:
            lines += problem_lines(
                snapshot.path, absolute_scripts_problems(snapshot.hooks_file, snapshot.path)
            )
            snapshots.append(snapshot)
    if lines:
        print("proxy-hooks db import: nothing imported:", *lines, sep="\n  ", file=sys.stderr)
        return 1
    known = set(database.container_names())
    for snapshot in snapshots:
        name = snapshot.container
        if name in known:
            stored, _ = PostgresHooksStore(database, name).write(None, _replace_with(snapshot.hooks_file))
            print(f"{snapshot.path}: container {name!r} is now version {stored.version}")
        else:
            stored = database.insert(snapshot.hooks_file)
            known.add(name)
            print(f"{snapshot.path}: container {name!r} added as version {stored.version}")
    return 0


def _replace_with(imported: HooksFile) -> Any:
    def change(current: HooksFile) -> tuple[HooksFile, None]:
        return imported, None

    return change


def _export(database: Database, folder: Path) -> int:
    from addon.store.postgres import PostgresHooksStore

    folder.mkdir(parents=True, exist_ok=True)
    for name in database.container_names():
        snapshot = PostgresHooksStore(database, name).open()
        target = folder / f"{name}.json"
        target.write_bytes(render(document(snapshot.hooks_file)))
        print(f"{target}: container {name!r} version {snapshot.version}")
    return 0
