"""One contract for every hooks store backend: the file store and the PostgreSQL store.

Each test runs against both (the `backend` fixture), on real files and a real PostgreSQL server.
The store-level half drives the `HooksSource` interface; the API-level half replays the same
sequence of calls against a real `proxy-hooks api` on each backend and requires identical
answers (statuses, envelopes, ETags, the 404/428/412/422 order), ids and timestamps aside.

Hand edits (a file changed on disk without a new file_version) are the file store's own rules
and are tested in tests/test_store.py: a container in PostgreSQL has no file to edit by hand.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon import edits
from addon.model import HookCreate, HooksFile
from addon.store import HooksSource, HooksStore, VersionMismatch, utc_now
from addon.store.postgres import Database, PostgresHooksStore
from addon.validation import InvalidInput, json_object, load_hooks_file
from tests.conftest import ApiProcess, demo, proxy_hooks_command, write_container, write_scripts
from tests.harness import hook

NEW_HOOK = HookCreate.model_validate({"match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}})
BASE = "/api/v1/containers/demo/proxy/hooks"


def append(hooks_file: HooksFile) -> tuple[HooksFile, Any]:
    return edits.insert_hook(hooks_file, "billing", NEW_HOOK, utc_now())


def seed_document(home: Path, **changes: Any) -> Path:
    """The demo container with its scripts folder named absolutely (as a database needs), plus
    the scripts the scenarios refer to; the file both backends start from."""
    path = write_container(home / "demo.json", demo(scripts_dir=str(home / "scripts"), **changes))
    write_scripts(home / "scripts", "/a.py", "/b.py")
    return path


@dataclass
class Backend:
    name: str
    config: str  # what hooks_config / --config names: the file, or the DSN
    fresh: Callable[[], HooksSource]  # a new store on the same container, as another process has


@pytest.fixture(params=["file", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    path = seed_document(tmp_path)
    if request.param == "file":
        yield Backend("file", str(path), lambda: HooksStore(path))
        return
    dsn = str(request.getfixturevalue("postgres_dsn"))
    database = Database(dsn)
    database.init()
    database.insert(load_hooks_file(path, json_object(path.read_bytes())))
    databases = [database]

    def fresh() -> HooksSource:
        databases.append(Database(dsn))
        return PostgresHooksStore(databases[-1], "demo")

    yield Backend("postgresql", dsn, fresh)
    for each in databases:
        each.close()


# --- the store interface ---


def test_open_reads_the_first_version(backend: Backend) -> None:
    snapshot = backend.fresh().open()
    assert (snapshot.container, snapshot.version, snapshot.etag) == ("demo", 1, "file:v1")
    assert snapshot.hooks_file.hooks["auth"][0].id == "01hz8x9k2b3c4d5e6f7g8h9j0k"


def test_a_write_is_the_next_version_and_every_reader_sees_it(backend: Backend) -> None:
    store, other = backend.fresh(), backend.fresh()
    store.open()
    other.open()
    snapshot, (_, created) = store.write(1, append)
    assert snapshot.version == 2 and snapshot.etag == "file:v2"
    assert store.last_good == snapshot
    seen = other.read()
    assert seen.version == 2
    assert [h.id for h in seen.hooks_file.hooks["billing"]] == [created.id]


def test_a_stale_version_is_refused_with_the_current_one_and_writes_nothing(backend: Backend) -> None:
    store = backend.fresh()
    store.open()
    store.write(1, append)
    with pytest.raises(VersionMismatch) as caught:
        store.write(1, append)
    assert caught.value.current.version == 2
    assert len(backend.fresh().read().hooks_file.hooks["billing"]) == 1


def test_no_expected_version_writes_over_whichever_is_current(backend: Backend) -> None:
    store = backend.fresh()
    store.open()
    store.write(None, append)
    assert store.write(None, append)[0].version == 3


def test_a_change_that_fails_writes_nothing(backend: Backend) -> None:
    store = backend.fresh()
    store.open()

    def broken(hooks_file: HooksFile) -> tuple[HooksFile, None]:
        raise edits.NotFound("service", "no such service")

    with pytest.raises(edits.NotFound):
        store.write(1, broken)

    def undefined_service(hooks_file: HooksFile) -> tuple[HooksFile, None]:
        hooks = {**hooks_file.hooks, "nope": hooks_file.hooks["auth"]}
        return hooks_file.model_copy(update={"hooks": hooks}), None

    with pytest.raises(InvalidInput) as caught:  # the whole container is checked before a write
        store.write(1, undefined_service)
    assert caught.value.problems[0].field == "hooks.nope"
    assert backend.fresh().read().version == 1


def test_minted_ids_and_hook_versions_are_the_stores_not_the_callers(backend: Backend) -> None:
    store = backend.fresh()
    store.open()
    snapshot, (_, created) = store.write(1, append)
    assert created.id and re.fullmatch(r"[0-9a-z]{26}", created.id)
    # Every other reader sees the same id; an unchanged hook keeps its version.
    again = backend.fresh().read()
    assert again.hooks_file.hooks["billing"][0].id == created.id
    assert again.hooks_file.hooks["auth"][0] == snapshot.hooks_file.hooks["auth"][0]


def test_a_reader_is_told_when_it_meets_a_newer_version(backend: Backend) -> None:
    watcher = backend.fresh()
    watcher.open()
    told: list[tuple[str, int | None]] = []
    watcher.on_change = lambda kind, version, problems: told.append((kind, version))
    backend.fresh().write(1, append)
    watcher.read()
    assert told == [("reload", 2)]


def test_concurrent_writers_with_retries_lose_nothing(backend: Backend) -> None:
    writers, each = 4, 10

    def write_many() -> None:
        store = backend.fresh()
        for _ in range(each):
            while True:
                current = store.read().version
                try:
                    store.write(current, append)
                    break
                except VersionMismatch:
                    continue

    threads = [threading.Thread(target=write_many) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = backend.fresh().read()
    assert len(final.hooks_file.hooks["billing"]) == writers * each
    assert final.version == 1 + writers * each


# --- the API on each backend: the same calls, the same answers ---

ULID = re.compile(r"\b[0-9a-hjkmnp-tv-z]{26}\b")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def normalized(text: str, names: dict[str, str]) -> str:
    """Minted ids become id-1, id-2… in order of first appearance; timestamps become <time>."""

    def name(found: re.Match[str]) -> str:
        return names.setdefault(found.group(0), f"id-{len(names) + 1}")

    return TIME.sub("<time>", ULID.sub(name, text))


def scenario(client: httpx.Client) -> list[str]:
    """Every kind of hooks call, the errors in the contract's order among them."""
    answers: list[str] = []
    names: dict[str, str] = {"01hz8x9k2b3c4d5e6f7g8h9j0k": "seed"}
    etag = "file:v1"

    def call(method: str, path: str, body: Any = None, if_match: str | None = None) -> dict[str, Any]:
        nonlocal etag
        headers = {} if if_match is None else {"If-Match": if_match}
        response = client.request(method, path, json=body, headers=headers)
        answers.append(
            f"{method} {normalized(path, names)} -> {response.status_code} "
            f"ETag={response.headers.get('ETag')} {normalized(response.text, names)}"
        )
        etag = response.headers.get("ETag", etag)
        return dict(response.json())

    call("GET", BASE)
    call("GET", f"{BASE}/auth")
    call("GET", f"{BASE}/nope")
    call("GET", "/api/v1/containers/nope/proxy/hooks")
    call("POST", f"{BASE}/nope", hook("/x", "/a.py"), "file:v9")  # 404 before 428 and 412
    call("POST", f"{BASE}/billing", hook("/x", "/a.py"))  # 428
    call("POST", f"{BASE}/billing", hook("/x", "/a.py"), "file:v9")  # 412
    call("POST", f"{BASE}/billing", {"match": {"path": "x"}, "script": {"path": "/missing.py"}}, etag)
    first = call("POST", f"{BASE}/billing", hook("/x", "/a.py", name="first"), etag)["data"]["hook"]["id"]
    second = call("POST", f"{BASE}/billing", hook("/y", "/b.py"), etag)["data"]["hook"]["id"]
    call("PATCH", f"{BASE}/billing/{first}", hook("/x2", "/a.py", name="first", timeout=900), etag)
    call("PATCH", f"{BASE}/billing/{second}/position", {"position": 0}, etag)
    call("PATCH", f"{BASE}/billing/{second}/position", {"position": 0}, "file:v2")  # 412
    call("DELETE", f"{BASE}/billing/{first}", None, etag)
    call("GET", f"{BASE}/billing/{first}")
    call(
        "PUT",
        BASE,
        {"hooks": {"auth": [hook("/new", "/a.py", name="fresh")], "billing": [hook("/p", "/b.py")]}},
        etag,
    )
    items = [
        {"service": "auth", "hook": hook("/new2", "/a.py", name="fresh")},
        {"service": "billing", "hook": hook("/q", "/b.py")},
    ]
    call("PATCH", BASE, {"items": items}, etag)
    call("PATCH", BASE, {"items": [{"service": "nope", "hook": hook("/q", "/b.py")}]}, etag)  # 422
    call("PUT", f"{BASE}/billing", {"hooks": [hook("/r", "/b.py")]}, etag)
    call("DELETE", f"{BASE}/billing", None, etag)
    call("GET", BASE)
    call("GET", "/api/v1/containers")
    return answers


def test_the_api_answers_identically_on_every_backend(tmp_path: Path, postgres_dsn: str) -> None:
    path = seed_document(tmp_path / "file")
    database = seed_document(tmp_path / "db")
    for command in (["db", "init"], ["db", "import", str(database)]):
        subprocess.run(
            [*proxy_hooks_command(), *command[:2], "--config", postgres_dsn, *command[2:]],
            check=True,
            capture_output=True,
            timeout=60,
        )
    transcripts: dict[str, list[str]] = {}
    for name, config in (("file", path), ("postgresql", postgres_dsn)):
        api = ApiProcess(config)
        try:
            with api.client() as client:
                transcripts[name] = scenario(client)
        finally:
            api.stop()
    # The scripts folders differ by name only; say so, then compare the rest.
    file_answers = [line.replace(str(tmp_path / "file"), "HOME") for line in transcripts["file"]]
    db_answers = [line.replace(str(tmp_path / "db"), "HOME") for line in transcripts["postgresql"]]
    assert len(file_answers) == len(db_answers) == 22
    for file_answer, db_answer in zip(file_answers, db_answers, strict=True):
        assert file_answer == db_answer
    statuses = [int(line.split(" -> ")[1].split()[0]) for line in file_answers]
    assert statuses[2:8] == [404, 404, 404, 428, 412, 422]
    assert statuses == [
        200, 200, 404, 404, 404, 428, 412, 422, 201, 201, 200, 200, 412, 200, 404, 200, 200, 422,
        200, 200, 200, 200,
    ]  # fmt: skip
