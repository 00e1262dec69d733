"""The hooks store on real files: versions, hand edits, minted ids, read-only and broken files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon import edits
from addon.model import HookCreate, HooksFile
from addon.store import FileUnusable, HooksStore, ReadOnlyFile, VersionMismatch, utc_now
from tests.conftest import DEMO, ApiProcess, demo, reset_container, write_container, write_scripts

BASE = "/api/v1/containers/demo/proxy/hooks"
NEW_HOOK = HookCreate.model_validate({"match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}})


def append(hooks_file: HooksFile) -> tuple[HooksFile, Any]:
    return edits.insert_hook(hooks_file, "billing", NEW_HOOK, utc_now())


def hand_edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=4))


def test_write_goes_up_by_one_and_checks_the_version(tmp_path: Path) -> None:
    store = HooksStore(write_container(tmp_path / "demo.json"))
    assert store.open().version == 1
    snapshot, _ = store.write(1, append)
    assert snapshot.version == 2
    assert json.loads(store.path.read_text())["file_version"] == 2
    with pytest.raises(VersionMismatch) as caught:
        store.write(1, append)
    assert caught.value.current.version == 2


def test_hand_edit_without_a_new_version_gets_one(tmp_path: Path) -> None:
    store = HooksStore(write_container(tmp_path / "demo.json"))
    store.open()
    hand_edit(store.path, lambda d: d["hooks"]["auth"][0].update(timeout=100))
    snapshot = store.read()
    assert snapshot.version == 2
    assert snapshot.hooks_file.hooks["auth"][0].timeout == 100
    assert json.loads(store.path.read_text())["file_version"] == 2  # written back
    # A client that still holds v1 cannot overwrite the hand edit.
    with pytest.raises(VersionMismatch):
        store.write(1, append)


def test_hand_edit_seen_by_a_process_that_never_read_the_old_content(tmp_path: Path) -> None:
    """The lock file carries the last known content hash, so a second store (another process)
    that first looks after the edit still sees it."""
    path = write_container(tmp_path / "demo.json")
    HooksStore(path).open()
    hand_edit(path, lambda d: d["hooks"]["auth"].clear())
    assert HooksStore(path).open().version == 2


def test_whitespace_only_edit_is_not_a_new_version(tmp_path: Path) -> None:
    store = HooksStore(write_container(tmp_path / "demo.json"))
    store.open()
    hand_edit(store.path, lambda d: None)  # re-indented, same content
    assert store.read().version == 1


def test_version_moved_backwards_by_hand_goes_forward(tmp_path: Path) -> None:
    store = HooksStore(write_container(tmp_path / "demo.json", demo(file_version=5)))
    store.open()
    hand_edit(store.path, lambda d: d.update(file_version=2))
    assert store.read().version == 6


def test_version_raised_by_hand_is_kept(tmp_path: Path) -> None:
    store = HooksStore(write_container(tmp_path / "demo.json"))
    store.open()
    hand_edit(store.path, lambda d: (d.update(file_version=10), d["hooks"]["auth"].clear()))
    assert store.read().version == 10


def test_hooks_without_ids_get_minted_and_written_back(tmp_path: Path) -> None:
    data = demo()
    del data["hooks"]["auth"][0]["id"]
    store = HooksStore(write_container(tmp_path / "demo.json", data))
    snapshot = store.open()
    minted = snapshot.hooks_file.hooks["auth"][0].id
    assert minted is not None and len(minted) == 26
    on_disk = json.loads(store.path.read_text())
    assert on_disk["file_version"] == 2
    assert on_disk["hooks"]["auth"][0]["id"] == minted
    assert HooksStore(store.path).open().hooks_file.hooks["auth"][0].id == minted


def test_read_only_file_keeps_minted_ids_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = demo()
    del data["hooks"]["auth"][0]["id"]
    path = write_container(tmp_path / "demo.json", data)
    before = path.read_bytes()
    path.chmod(0o444)
    store = HooksStore(path)
    with caplog.at_level(logging.WARNING):
        snapshot = store.open()
    assert "read-only" in caplog.text
    minted = snapshot.hooks_file.hooks["auth"][0].id
    assert minted is not None
    assert path.read_bytes() == before
    assert store.read().hooks_file.hooks["auth"][0].id == minted  # stable while the file is
    with pytest.raises(ReadOnlyFile):
        store.write(snapshot.version, append)


def test_invalid_hand_edit_keeps_the_last_good_version(tmp_path: Path) -> None:
    store = HooksStore(write_container(tmp_path / "demo.json"))
    store.open()
    store.path.write_text('{"container": "demo", "hooks": {')
    snapshot = store.read()
    assert snapshot.version == 1 and snapshot.hooks_file.hooks["auth"]
    assert store.error is not None and "malformed JSON" in str(store.error)
    with pytest.raises(FileUnusable):
        store.write(1, append)
    assert store.path.read_text() == '{"container": "demo", "hooks": {'  # nothing lost
    write_container(store.path)
    assert store.read().version == 1 and store.error is None


def test_open_names_file_field_and_reason(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json", demo(file_version=-1))
    with pytest.raises(FileUnusable) as caught:
        HooksStore(path).open()
    assert [str(p) for p in caught.value.problems] == ["file_version: must be at least 0, got -1"]


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = HooksStore(write_container(tmp_path / "demo.json"))
    store.open()
    for version in range(1, 6):
        store.write(version, append)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo.json.lock", "demo.json", "scripts"]


def test_the_api_sees_a_hand_edit_as_a_new_version(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    write_scripts(tmp_path / "scripts", "/a.py")
    api = ApiProcess(path)
    try:
        with api.client() as http:
            assert http.get(BASE).headers["ETag"] == "file:v1"
            hand_edit(path, lambda d: d["hooks"]["auth"][0]["match"].update(path="/v9/login"))
            stale = http.delete(
                f"{BASE}/auth/{DEMO['hooks']['auth'][0]['id']}", headers={"If-Match": "file:v1"}
            )
            assert stale.status_code == 412
            assert stale.headers["ETag"] == "file:v2"
            hook = http.get(f"{BASE}/auth").json()["data"]["hooks"][0]
            assert hook["match"]["path"] == "/v9/login"
            # An invalid edit: reads keep the last good version, health shows why, writes wait.
            path.write_text('{"container": "demo", "services": {"auth": {"hosts": 5}}}')
            health = http.get("/healthz").json()["data"]
            assert health["status"] == "degraded"
            assert health["containers"][0]["error"] == ["services.auth.hosts: must be a list, got 5"]
            assert http.get(BASE).headers["ETag"] == "file:v2"
            body = {"match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}}
            refused = http.post(f"{BASE}/billing", json=body, headers={"If-Match": "file:v2"})
            assert refused.status_code == 409 and refused.json()["code"] == "FILE_INVALID"
            reset_container(path)
            assert http.get("/healthz").json()["data"]["status"] == "ok"
    finally:
        api.stop()


def test_api_write_to_a_read_only_file_is_409(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    write_scripts(tmp_path / "scripts", "/a.py")
    path.chmod(0o444)
    api = ApiProcess(path)
    try:
        with api.client() as http:
            body = {"match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}}
            response = http.post(f"{BASE}/billing", json=body, headers={"If-Match": "file:v1"})
            assert response.status_code == 409
            assert response.json()["code"] == "READ_ONLY"
            assert isinstance(http, httpx.Client)
    finally:
        api.stop()
