"""Hooks kept in PostgreSQL, shared by a cluster of real processes: three mitmdump proxies and two
`proxy-hooks api` processes on one database (a server of this module's own, so it can be stopped
mid-traffic). Every wait polls with a deadline; no timing is asserted (bench/propagation.py
measures the propagation delay)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ApiProcess, proxy_hooks_command
from tests.harness import Mitmdump, Upstream, container_doc, hook, wait_for, write_json
from tests.postgres_server import LocalPostgres

SCRIPTS = Path(__file__).parent / "scripts"
PASSWORD = "pw-never-shown-4711"  # trust authentication ignores it; no answer or log may show it
BASE = "/api/v1/containers/e2e/proxy/hooks"
DEADLINE_S = 30.0


@dataclass
class Cluster:
    server: LocalPostgres
    dsn: str
    upstream: Upstream
    proxies: list[Mitmdump]
    apis: list[ApiProcess]
    clients: list[httpx.Client] = field(default_factory=list)

    def api(self, index: int) -> httpx.Client:
        return self.clients[index % len(self.clients)]

    def logs(self) -> str:
        return "".join(p.output() for p in self.proxies) + "".join("".join(a.stderr_lines) for a in self.apis)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import tempfile

    home = tmp_path_factory.mktemp("cluster")
    shutil.copytree(SCRIPTS, home / "scripts")
    upstream = Upstream()
    # Beside the system temp folder, not pytest's: the server's own user must reach it as root.
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="proxy-hooks-cluster-")) / "data")
    server.start()
    server.wait_ready()
    dsn = server.create_database().replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    doc = container_doc(upstream, scripts_dir=str(home / "scripts"))
    write_json(home / "e2e.json", doc)
    for command in (["init"], ["import", str(home / "e2e.json")]):
        subprocess.run(
            [*proxy_hooks_command(), "db", command[0], "--config", dsn, *command[1:]],
            check=True,
            capture_output=True,
            timeout=60,
        )
    proxies = [Mitmdump(dsn, home / f"confdir{i}", events="") for i in range(3)]
    apis = [ApiProcess(dsn) for _ in range(2)]
    state = Cluster(server, dsn, upstream, proxies, apis)
    state.clients = [httpx.Client(base_url=api.url, timeout=30.0) for api in apis]
    try:
        yield state
    finally:
        for client in state.clients:
            client.close()
        for proxy in proxies:
            proxy.stop()
        for api in apis:
            api.stop()
        upstream.stop()
        server.destroy()
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)


def append(api: httpx.Client, service: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a hook with the current ETag, again on 412 (another writer got there first)."""
    while True:
        etag = api.get(f"{BASE}/{service}").headers["ETag"]
        response = api.post(f"{BASE}/{service}", json=body, headers={"If-Match": etag})
        if response.status_code != 412:
            assert response.status_code == 201, response.text
            data: dict[str, Any] = response.json()["data"]
            return data


def blocked_by(proxy: Mitmdump, path: str) -> bool:
    with proxy.client() as client:
        response = client.get(f"http://auth.test{path}", headers={"x-act": "block"})
    return response.status_code == 403 and "x-proxy-hooks-hook" in response.headers


def test_a_write_through_either_api_is_enforced_by_every_proxy(cluster: Cluster) -> None:
    for index in range(2):
        path = f"/gate-{index}-{id(cluster)}"
        assert not blocked_by(cluster.proxies[0], path)
        append(cluster.api(index), "auth", hook(path, "/act.py"))
        for proxy in cluster.proxies:
            wait_for(lambda p=proxy, g=path: blocked_by(p, g), DEADLINE_S, f"{path} enforced everywhere")


def test_concurrent_appends_through_both_apis_lose_nothing(cluster: Cluster) -> None:
    clients, each = 8, 50
    before = cluster.api(0).get(f"{BASE}/billing").json()["data"]
    versions: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(base_url=cluster.apis[number % 2].url, timeout=60.0) as api:
            for n in range(each):
                data = append(api, "billing", hook(f"/c{number}/{n}", "/act.py"))
                with lock:
                    versions.append(data["file_version"])

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = cluster.api(1).get(f"{BASE}/billing").json()["data"]
    assert len(after["hooks"]) - len(before["hooks"]) == clients * each
    start = before["file_version"]
    assert sorted(versions) == list(range(start + 1, start + 1 + clients * each))
    assert after["file_version"] == start + clients * each


def health(client: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = client.get("/healthz").json()["data"]
    return data


def test_the_database_stopped_mid_traffic(cluster: Cluster) -> None:
    gate = f"/down-{id(cluster)}"
    append(cluster.api(0), "auth", hook(gate, "/act.py"))
    for proxy in cluster.proxies:
        wait_for(lambda p=proxy: blocked_by(p, gate), DEADLINE_S, "the gate enforced before the stop")
    acknowledged: list[str] = []
    refused: list[dict[str, Any]] = []
    stop_writing = threading.Event()

    def writer() -> None:  # writes all along, through both APIs
        n = 0
        while not stop_writing.is_set():
            api = cluster.api(n)
            n += 1
            etag = api.get(f"{BASE}/billing").headers["ETag"]
            response = api.post(
                f"{BASE}/billing", json=hook(f"/w/{n}", "/act.py"), headers={"If-Match": etag}
            )
            if response.status_code == 201:
                acknowledged.append(response.json()["data"]["hook"]["id"])
            elif response.status_code == 503:
                refused.append(response.json())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(acknowledged) >= 3, DEADLINE_S, "writes before the stop")
        cluster.server.stop("immediate")
        wait_for(lambda: refused, DEADLINE_S, "a write refused while the database is down")
        # Flows: still enforced by the last good version, on every proxy.
        assert all(blocked_by(proxy, gate) for proxy in cluster.proxies)
        # Health: degraded with the reason, on the APIs and on each proxy's own API.
        for client in [*cluster.clients, *(proxy.api() for proxy in cluster.proxies)]:
            data = health(client)
            assert data["status"] == "degraded"
            assert any("cannot be reached" in reason for reason in data["reasons"]), data
        envelope = refused[0]
        assert envelope["statusCode"] == 503 and envelope["code"] == "STORE_UNAVAILABLE"
        assert "last good version" in envelope["message"]
        cluster.server.start()
        cluster.server.wait_ready()
        # Recovery without restarting anything: writes succeed, health is ok again.
        count = len(acknowledged)
        wait_for(lambda: len(acknowledged) > count + 2, DEADLINE_S, "writes after the restart")
    finally:
        stop_writing.set()
        thread.join()
    for client in [*cluster.clients, *(proxy.api() for proxy in cluster.proxies)]:
        wait_for(lambda c=client: health(c)["status"] == "ok", DEADLINE_S, "healthy again")
    stored = {h["id"] for h in cluster.api(1).get(f"{BASE}/billing").json()["data"]["hooks"]}
    assert set(acknowledged) <= stored  # no acknowledged write lost
    after = f"/after-{id(cluster)}"
    append(cluster.api(1), "auth", hook(after, "/act.py"))
    for proxy in cluster.proxies:
        wait_for(lambda p=proxy: blocked_by(p, after), DEADLINE_S, "a write after recovery enforced")
    assert PASSWORD not in str(refused) and PASSWORD not in cluster.logs()
