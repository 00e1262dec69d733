"""Events beside their hooks: with no hooks_events / --events, a configuration's store is
`<config folder>/.proxy-hooks/events.db` (or, when that folder is read-only, one under
$XDG_STATE_HOME), never the working directory; `proxy-hooks api` serves that store when a
proxy has made one and creates nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from addon.event_location import beside, default_events_path, fallback, state_home
from tests.conftest import ApiProcess
from tests.harness import Mitmdump, Upstream, container_doc, wait_for, write_json
from tests.proxy_fixtures import SCRIPTS, upstream  # noqa: F401 - fixture

EVENTS = "/api/v1/containers/e2e/proxy/events"
# In the file itself: a read-only folder takes no API write.
HOOK = {
    "id": "01hz8x9k2b3c4d5e6f7g8h9j0k",
    "match": {"method": "*", "path": "/located/**"},
    "script": {"path": "/act.py"},
}


def hooks_folder(folder: Path, upstream: Upstream) -> Path:
    """A folder holding one container file (e2e.json) with HOOK on `auth`, and its scripts."""
    shutil.copytree(SCRIPTS, folder / "scripts")
    doc = container_doc(upstream)
    doc["hooks"]["auth"] = [HOOK]
    write_json(folder / "e2e.json", doc)
    return folder


def start_proxy(config: Path, work: Path, env: dict[str, str] | None = None) -> Mitmdump:
    """A proxy with hooks_events unset, started from `work`."""
    confdir = work.parent / f"confdir-{config.parent.name}"
    return Mitmdump(config, confdir, default_events=True, cwd=work, env=env)


def run_hook(proxy: Mitmdump, marker: str) -> None:
    with proxy.client() as http:
        assert http.get(f"http://auth.test/located/{marker}").status_code == 200


def recorded_paths(api_url: str, wanted: str) -> set[str]:
    """The paths of the runs the API at `api_url` serves, once `wanted` is among them."""

    def paths() -> set[str] | None:
        response = httpx.get(api_url + EVENTS, params={"kind": "run", "limit": 500}, timeout=10)
        found = (
            {e["path"] for e in response.json()["data"]["events"]} if response.status_code == 200 else set()
        )
        return found if wanted in found else None

    return set(wait_for(paths, 15, f"a run on {wanted}"))


def served_alone(config: Path, work: Path, env: dict[str, str], wanted: str) -> set[str]:
    """The run paths `proxy-hooks api --config CONFIG` (no --events) serves, started from `work`."""
    api = ApiProcess(config, default_events=True, cwd=work, env=env)
    try:
        return recorded_paths(api.url, wanted)
    finally:
        api.stop()


def store_of(proxy: Mitmdump) -> Path:
    return Path(httpx.get(proxy.api_url + "/healthz", timeout=10).json()["data"]["events"]["store"])


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_two_proxies_started_from_one_folder_keep_separate_histories(
    tmp_path: Path, upstream: Upstream
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    first = start_proxy(hooks_folder(tmp_path / "first", upstream) / "e2e.json", work)
    second = start_proxy(hooks_folder(tmp_path / "second", upstream) / "e2e.json", work)
    try:
        run_hook(first, "one")
        run_hook(second, "two")
        assert recorded_paths(second.api_url, "/located/two") == {"/located/two"}
        assert recorded_paths(first.api_url, "/located/one") == {"/located/one"}
        assert store_of(first) == tmp_path / "first" / ".proxy-hooks" / "events.db"
        assert store_of(second) == tmp_path / "second" / ".proxy-hooks" / "events.db"
    finally:
        first.stop()
        second.stop()
    assert files_under(work) == []


@dataclass(frozen=True)
class Place:
    """Where a test runs things from (`work`), its hooks folder, and its $XDG_STATE_HOME."""

    work: Path
    folder: Path
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return {"XDG_STATE_HOME": str(self.state)}


@pytest.fixture
def place(tmp_path: Path, upstream: Upstream) -> Place:
    (tmp_path / "work").mkdir()
    return Place(tmp_path / "work", hooks_folder(tmp_path / "hooks", upstream), tmp_path / "state")


def test_the_api_alone_serves_its_configurations_store_and_creates_none(place: Place) -> None:
    work, state, folder, env = place.work, place.state, place.folder, place.env

    api = ApiProcess(folder, default_events=True, cwd=work, env=env)
    try:
        with api.client() as http:
            response = http.get(EVENTS)
            health = http.get("/healthz").json()["data"]
    finally:
        api.stop()
    assert response.status_code == 503 and response.json()["code"] == "NO_EVENTS", response.text
    assert health["status"] == "ok"
    assert "no events recorded for" in "".join(api.stderr_lines)
    assert files_under(work) == [] and files_under(state) == []
    assert not (folder / ".proxy-hooks").exists()

    proxy = start_proxy(folder / "e2e.json", work, env)
    try:
        run_hook(proxy, "recorded")
        recorded_paths(proxy.api_url, "/located/recorded")
    finally:
        proxy.stop()

    assert served_alone(folder, work, env, "/located/recorded") == {"/located/recorded"}


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """No new entries in `folder`: chmod for a user; for root, who writes through modes, the
    immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a folder read-only as root here: chattr: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_config_folder_keeps_events_under_the_state_folder(place: Place) -> None:
    work, state, folder, env = place.work, place.state, place.folder, place.env
    with read_only(folder):
        proxy = start_proxy(folder / "e2e.json", work, env)
        try:
            run_hook(proxy, "read-only")
            recorded_paths(proxy.api_url, "/located/read-only")
            store = store_of(proxy)
        finally:
            proxy.stop()
        # $XDG_STATE_HOME/proxy-hooks/<digest of the configuration's path>/events.db
        assert store.parent.parent == state / "proxy-hooks" and store.name == "events.db"
        assert store.is_file() and not (folder / ".proxy-hooks").exists()
        assert served_alone(folder / "e2e.json", work, env, "/located/read-only") == {"/located/read-only"}
    assert files_under(work) == []


# --- the rule alone ---


def test_a_file_configuration_keeps_events_in_its_folder_and_a_folder_in_itself(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{}")
    assert beside(tmp_path / "c.json") == tmp_path / ".proxy-hooks" / "events.db"
    assert beside(tmp_path) == tmp_path / ".proxy-hooks" / "events.db"
    assert default_events_path(tmp_path) == beside(tmp_path)
    assert not (tmp_path / ".proxy-hooks").exists(), "a reader's question creates nothing"
    assert default_events_path(tmp_path, create=True) == beside(tmp_path)
    assert (tmp_path / ".proxy-hooks").is_dir()


def test_each_configuration_has_its_own_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    one, two = fallback(tmp_path / "a.json"), fallback(tmp_path / "b.json")
    assert one != two and one.parent.parent == two.parent.parent == tmp_path / "state" / "proxy-hooks"
    assert fallback(tmp_path / "x" / ".." / "a.json") == one  # the same file, however it is named


@pytest.mark.parametrize("value", ["", "relative/state"])
def test_an_unset_or_relative_state_home_means_the_users_own(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", value)
    assert state_home() == Path.home() / ".local" / "state"
