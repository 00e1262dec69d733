"""What only the PostgreSQL hooks store has: `proxy-hooks db init|import|export`, its versioned
schema, the absolute scripts_dir rule, the listener that follows other processes' writes, and
what happens when the database cannot be reached. A real server throughout (the session's, or
one of the test's own where it must be stopped)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from addon import edits
from addon.containers import ConfigError, Containers
from addon.database_url import describe_dsn
from addon.model import HookCreate, HooksFile
from addon.store import StoreUnavailable, StoreUnusable, utc_now
from addon.store.postgres import SCHEMA_VERSION, Database, PostgresHooksStore, listen
from addon.validation import InvalidInput
from tests.conftest import demo, proxy_hooks_command, write_container, write_scripts
from tests.postgres_server import LocalPostgres

NEW_HOOK = HookCreate.model_validate({"match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}})


def db(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*proxy_hooks_command(), "db", *args], capture_output=True, text=True, timeout=60, check=False
    )


def append(hooks_file: HooksFile) -> tuple[HooksFile, Any]:
    return edits.insert_hook(hooks_file, "billing", NEW_HOOK, utc_now())


def absolute_container(home: Path, container: str = "demo") -> Path:
    """The demo container as a database keeps it: its scripts folder named absolutely."""
    data = demo(container=container, scripts_dir=str(home / "scripts"))
    path = write_container(home / f"{container}.json", data)
    write_scripts(home / "scripts", "/a.py")
    return path


def test_init_is_versioned_and_safe_to_repeat(postgres_dsn: str) -> None:
    first = db("init", "--config", postgres_dsn)
    assert first.returncode == 0 and f"created (version {SCHEMA_VERSION})" in first.stdout
    again = db("init", "--config", postgres_dsn)
    assert again.returncode == 0 and "up to date" in again.stdout
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT component, version FROM proxy_hooks_schema").fetchall()
    assert rows == [("hooks", SCHEMA_VERSION)]


def test_a_database_without_the_schema_or_with_a_newer_one_is_refused(postgres_dsn: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Containers.load(postgres_dsn)
    assert "run `proxy-hooks db init --config DSN`" in str(caught.value)
    Database(postgres_dsn).init()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("UPDATE proxy_hooks_schema SET version = version + 1 WHERE component = 'hooks'")
    with pytest.raises(ConfigError) as caught:
        Containers.load(postgres_dsn)
    assert "newer than this proxy-hooks knows" in str(caught.value)


def test_import_export_round_trip_and_a_new_version_on_reimport(tmp_path: Path, postgres_dsn: str) -> None:
    path = absolute_container(tmp_path / "in")
    db("init", "--config", postgres_dsn)
    added = db("import", "--config", postgres_dsn, str(path))
    assert added.returncode == 0 and "added as version 1" in added.stdout, added.stderr
    again = db("import", "--config", postgres_dsn, str(path))
    assert again.returncode == 0 and "is now version 2" in again.stdout
    out = db("export", "--config", postgres_dsn, str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    exported = json.loads((tmp_path / "out" / "demo.json").read_text())
    original = json.loads(path.read_text())
    assert exported["file_version"] == 2
    assert {k: v for k, v in exported.items() if k != "file_version"} == {
        k: v for k, v in original.items() if k != "file_version"
    }


def test_import_refuses_a_relative_scripts_dir_and_stores_nothing(tmp_path: Path, postgres_dsn: str) -> None:
    good = absolute_container(tmp_path / "good", container="good")
    relative = write_container(tmp_path / "rel" / "demo.json")  # scripts_dir "scripts"
    db("init", "--config", postgres_dsn)
    result = db("import", "--config", postgres_dsn, str(good), str(relative))
    assert result.returncode == 1
    assert "nothing imported" in result.stderr
    assert "scripts_dir: 'scripts' is relative" in result.stderr
    assert str(tmp_path / "rel" / "scripts") in result.stderr  # the absolute path it would mean
    assert Database(postgres_dsn).container_names() == []


def test_a_write_cannot_make_scripts_dir_relative(tmp_path: Path, postgres_dsn: str) -> None:
    database = Database(postgres_dsn)
    database.init()
    db("import", "--config", postgres_dsn, str(absolute_container(tmp_path)))
    store = PostgresHooksStore(database, "demo")
    store.open()
    with pytest.raises(InvalidInput) as caught:
        store.write(1, lambda f: (f.model_copy(update={"scripts_dir": "scripts"}), None))
    assert caught.value.problems[0].field == "scripts_dir"


def test_the_listener_follows_writes_of_other_processes(tmp_path: Path, postgres_dsn: str) -> None:
    db("init", "--config", postgres_dsn)
    db("import", "--config", postgres_dsn, str(absolute_container(tmp_path)))
    containers = Containers.load(postgres_dsn)
    assert containers.database is not None
    store = containers.get("demo")
    assert isinstance(store, PostgresHooksStore)

    async def follow() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(listen(containers.database, {"demo": store}, stop))  # type: ignore[arg-type]
        other = PostgresHooksStore(Database(postgres_dsn), "demo")
        other.open()
        await asyncio.to_thread(other.write, 1, append)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while store.last_good is None or store.last_good.version < 2:
            assert loop.time() < deadline, "the listener never loaded version 2"
            await asyncio.sleep(0.02)
        stop.set()
        await task
        other.database.close()
        return store.last_good.version

    assert asyncio.run(follow()) == 2  # told by NOTIFY; nobody called read() on this store


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="proxy-hooks-pg-own-")) / "data")
    server.start()
    server.wait_ready()
    yield server
    server.destroy()
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)


def test_an_unreachable_database_keeps_the_last_good_version_and_says_why_without_the_password(
    tmp_path: Path, own_server: LocalPostgres
) -> None:
    dsn = own_server.create_database().replace("postgres@", "postgres:hunter2-secret@")
    assert "hunter2" not in describe_dsn(dsn)
    db("init", "--config", dsn)
    db("import", "--config", dsn, str(absolute_container(tmp_path)))
    store = PostgresHooksStore(Database(dsn), "demo")
    assert store.open().version == 1
    own_server.stop("immediate")
    assert store.read().version == 1  # the last good version, still served
    assert isinstance(store.error, StoreUnavailable)
    assert "cannot be reached" in str(store.error) and "hunter2" not in str(store.error)
    with pytest.raises(StoreUnavailable) as caught:
        store.write(1, append)
    assert "hunter2" not in str(caught.value)
    own_server.start()
    own_server.wait_ready()
    assert store.read().version == 1 and store.error is None  # recovered by itself
    assert store.write(1, append)[0].version == 2


def test_run_and_api_take_a_dsn_and_say_what_is_missing(postgres_dsn: str) -> None:
    for command in ("run", "api"):
        result = subprocess.run(
            [*proxy_hooks_command(), command, "--config", postgres_dsn],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "has no proxy-hooks schema" in result.stderr and "db init" in result.stderr


def test_no_containers_and_a_container_deleted_under_a_proxy_are_said_so(
    tmp_path: Path, postgres_dsn: str
) -> None:
    database = Database(postgres_dsn)
    try:
        database.init()
        with pytest.raises(ConfigError) as empty:
            Containers.load(postgres_dsn)
        assert "no containers yet" in empty.value.lines[0] and "db import" in empty.value.lines[0]
        assert db("import", "--config", postgres_dsn, str(absolute_container(tmp_path))).returncode == 0
        store = PostgresHooksStore(database, "demo")
        assert store.open().version == 1
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM hooks_containers WHERE container = 'demo'")
        assert store.read().version == 1  # the last good version, still served
        assert store.error is not None and "no such container" in str(store.error)
        with pytest.raises(StoreUnusable) as gone:
            store.write(1, append)
        assert "no such container" in str(gone.value)
        assert "'demo' is no longer in" in str(gone.value.problems[0])
    finally:
        database.close()
