"""Many writers, two API processes, one file: no lost update, no torn file, no lost version."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from addon.store import HooksStore
from tests.conftest import ApiProcess, demo, write_container, write_scripts

SERVICE_URL = "/api/v1/containers/demo/proxy/hooks/billing"
CLIENTS = 8
APPENDS_PER_CLIENT = 50
DEADLINE_S = 120.0


def append_until_committed(http: httpx.Client, etag: str, n: int) -> tuple[int, str]:
    """POST with If-Match, retrying on 412 with the ETag the 412 carries. -> (version, etag)."""
    body = {"match": {"method": "GET", "path": f"/item/{n}"}, "script": {"path": "/hooks/x.py"}}
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        response = http.post(SERVICE_URL, json=body, headers={"If-Match": etag})
        if response.status_code == 201:
            data = response.json()["data"]
            return data["file_version"], data["etag"]
        assert response.status_code == 412, response.text
        etag = response.headers["ETag"]
    raise AssertionError("no commit before the deadline")


class FileWatcher(threading.Thread):
    """Reads the file over and over while writers run: it must always parse. It pauses a
    moment between reads (pacing, not synchronisation) to leave the writers CPU."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.versions: list[int] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            raw = self.path.read_bytes()
            try:
                self.versions.append(json.loads(raw)["file_version"])
            except ValueError as exc:
                self.failures.append(f"{exc}: {raw[:80]!r}")
            self.stop.wait(0.002)


def test_eight_clients_two_processes_no_lost_update(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json", demo(hooks={"auth": [], "billing": []}))
    write_scripts(tmp_path / "scripts", "/hooks/x.py")
    apis = [ApiProcess(path), ApiProcess(path)]
    watcher = FileWatcher(path)
    watcher.start()

    def client(index: int) -> list[int]:
        versions = []
        with apis[index % 2].client() as http:
            etag = http.get(SERVICE_URL).headers["ETag"]
            for n in range(APPENDS_PER_CLIENT):
                version, etag = append_until_committed(http, etag, index * 1000 + n)
                versions.append(version)
        return versions

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            committed = [v for versions in pool.map(client, range(CLIENTS)) for v in versions]
    finally:
        watcher.stop.set()
        watcher.join()
        for api in apis:
            api.stop()

    total = CLIENTS * APPENDS_PER_CLIENT
    assert sorted(committed) == list(range(2, total + 2))  # every version once, none skipped
    final = json.loads(path.read_text())
    assert final["file_version"] == total + 1
    paths = [hook["match"]["path"] for hook in final["hooks"]["billing"]]
    assert len(paths) == total and len(set(paths)) == total
    assert watcher.failures == []
    assert watcher.versions == sorted(watcher.versions)  # never seen going backwards
    HooksStore(path).open()  # and the final file is valid as a whole


def test_sigkill_mid_write_never_tears_the_file(tmp_path: Path) -> None:
    """Kill the API at random moments while four clients write. After each kill the file parses,
    is valid, holds at least every acknowledged version, and its content matches its version
    (one hook per append), so it is a state some write committed, never a torn mix."""
    path = write_container(tmp_path / "demo.json", demo(hooks={"auth": [], "billing": []}))
    write_scripts(tmp_path / "scripts", "/hooks/x.py")
    rng = random.Random(7)
    acknowledged = 1
    for _round in range(8):
        api = ApiProcess(path)
        stop = threading.Event()
        acks: list[int] = []

        def writer(
            n: int, api: ApiProcess = api, stop: threading.Event = stop, acks: list[int] = acks
        ) -> None:
            with api.client() as http:
                try:
                    etag = http.get(SERVICE_URL).headers["ETag"]
                    while not stop.is_set():
                        version, etag = append_until_committed(http, etag, n)
                        acks.append(version)
                except (httpx.HTTPError, KeyError):
                    return  # the server died under us

        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(acks) < rng.randint(3, 25) and time.monotonic() < deadline:
            time.sleep(0.005)  # polling the acknowledgement count, not synchronising on time
        api.proc.send_signal(signal.SIGKILL)
        api.proc.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        acknowledged = max([acknowledged, *acks])

        data: dict[str, Any] = json.loads(path.read_text())
        assert data["file_version"] >= acknowledged
        assert len(data["hooks"]["billing"]) == data["file_version"] - 1
        assert HooksStore(path).open().version == data["file_version"]
    assert acknowledged > 8
