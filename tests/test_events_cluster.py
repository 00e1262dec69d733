"""Three real mitmdump processes recording into one PostgreSQL database and one standalone
`proxy-hooks api --events DSN` serving them: every proxy's runs in one /events, one stream and
one set of stats, against a count kept here of what was sent through which proxy; a flood
across the proxies loses no run."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import ApiProcess
from tests.harness import Mitmdump, Upstream, container_doc, wait_for, write_json
from tests.proxy_fixtures import (
    SCRIPTS,
    upstream,  # noqa: F401 - fixture
)
from tests.test_events_e2e import Stream

PROXIES = 3
FLOOD = 5000
EVENTS = "/api/v1/containers/e2e/proxy/events"
HANDLE = "def handle(event):\n    return None\n"  # an exec-session hook that lets the flow on


@pytest.fixture(scope="module")
def cluster_dsn(postgres_server: Any) -> str:
    return str(postgres_server.create_database())


@pytest.fixture(scope="module")
def cluster_config(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Path:
    """One hooks file all the proxies serve: a per-run hook for /act/, a session one for /flood/."""
    home = tmp_path_factory.mktemp("cluster")
    shutil.copytree(SCRIPTS, home / "scripts")
    (home / "scripts" / "handle.py").write_text(HANDLE)
    hooks = [
        {"match": {"method": "*", "path": "/act/**"}, "script": {"path": "/act.py"}},
        {"match": {"method": "*", "path": "/flood/**"}, "script": {"path": "/handle.py", "execId": "flood"}},
    ]
    return write_json(home / "e2e.json", container_doc(upstream, hooks={"auth": hooks, "billing": []}))


@pytest.fixture(scope="module")
def proxies(cluster_config: Path, cluster_dsn: str) -> Iterator[list[Mitmdump]]:
    home = cluster_config.parent
    started: list[Mitmdump] = []
    try:
        for n in range(PROXIES):
            started.append(
                Mitmdump(
                    cluster_config,
                    home / f"confdir{n}",
                    "--set",
                    f"hooks_instance=proxy-{n}",
                    events=cluster_dsn,
                )
            )
        yield started
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture(scope="module")
def api(proxies: list[Mitmdump], cluster_config: Path, cluster_dsn: str) -> Iterator[httpx.Client]:
    process = ApiProcess(cluster_config, events=cluster_dsn)
    with process.client() as http:
        yield http
    process.stop()


def stored(dsn: str, where: str = "kind = 'run'") -> Counter[str]:
    """Runs per instance, counted straight from the database (not through the API)."""
    with psycopg.connect(dsn) as db:
        rows = db.execute(f"SELECT instance, count(*) FROM events WHERE {where} GROUP BY instance").fetchall()
    return Counter({instance: count for instance, count in rows})


def all_events(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = api.get(EVENTS, params={**params, "limit": "500", **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        found += page.json()["data"]["events"]
        cursor = page.json()["data"]["next_cursor"]
        if cursor is None:
            return found


def test_every_proxys_runs_in_one_list_one_stream_and_one_set_of_stats(
    proxies: list[Mitmdump], api: httpx.Client, cluster_dsn: str
) -> None:
    before = stored(cluster_dsn, "kind = 'run' AND data::json->>'path' LIKE '/act/%'")
    assert not before  # this test's runs are the only /act/ runs
    stream = Stream(api, kind="run")
    with proxies[0].api() as first_proxy_api:  # a proxy's own API streams the other proxies' runs too
        in_proxy = Stream(first_proxy_api, kind="run")
    sent: Counter[tuple[str, str]] = Counter()
    for n, proxy in enumerate(proxies):
        with proxy.client() as http:
            for k in range(2 + 3 * n):  # a different number through each proxy
                act = "block" if k % 3 == 0 else "continue"
                response = http.get(f"http://auth.test/act/{n}/{k}", headers={"x-act": act})
                assert response.status_code == (403 if act == "block" else 200)
                sent[(f"proxy-{n}", "blocked" if act == "block" else "continued")] += 1
    total = sum(sent.values())
    wait_for(lambda: len(stream.received) >= total, 30, "every run on the stream")
    wait_for(lambda: len(in_proxy.received) >= total, 30, "every run on the first proxy's own stream")
    stream.close()
    in_proxy.close()
    assert [e["id"] for _, e in in_proxy.received] == [e["id"] for _, e in stream.received]

    listed = [e for e in all_events(api, kind="run") if e["path"].startswith("/act/")]
    assert Counter((e["instance"], e["outcome"]) for e in listed) == sent
    streamed = [e for _, e in stream.received if e["path"].startswith("/act/")]
    assert Counter((e["instance"], e["outcome"]) for e in streamed) == sent
    ids = [int(seq) for seq, _ in stream.received]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # one order across the proxies
    assert [e["id"] for e in streamed] == [e["id"] for e in reversed(listed)]  # the list's order too
    for n in range(PROXIES):  # each proxy's own order is kept within the global one
        mine = [e["path"] for e in streamed if e["instance"] == f"proxy-{n}"]
        assert mine == [f"/act/{n}/{k}" for k in range(2 + 3 * n)]
    stats = api.get("/api/v1/containers/e2e/proxy/stats", params={"period": "24h"}).json()["data"]
    assert stats["totalEvents"] == sum(stored(cluster_dsn).values())
    assert stats["eventsByOutcome"]["blocked"] == sum(
        v for (_, outcome), v in sent.items() if outcome == "blocked"
    )
    assert Counter(e["instance"] for e in all_events(api, kind="run", instance="proxy-1")) == {
        "proxy-1": stored(cluster_dsn)["proxy-1"]
    }


def test_a_flood_across_the_proxies_records_every_run(
    proxies: list[Mitmdump], api: httpx.Client, cluster_dsn: str
) -> None:
    flood = "kind = 'run' AND data::json->>'path' LIKE '/flood/%'"
    assert not stored(cluster_dsn, flood)
    clients = [proxy.client() for proxy in proxies]

    def send(n: int) -> str:
        response = clients[n % PROXIES].get(f"http://auth.test/flood/{n}")
        assert response.status_code == 200 and response.headers.get("x-proxy-hooks-hook")
        return f"proxy-{n % PROXIES}"

    try:
        with ThreadPoolExecutor(24) as pool:
            sent = Counter(pool.map(send, range(FLOOD)))
    finally:
        for client in clients:
            client.close()
    assert sum(sent.values()) == FLOOD
    wait_for(lambda: stored(cluster_dsn, flood) == sent, 120, "every flooded run in the database")
    for proxy in proxies:
        with proxy.api() as own:
            health = own.get("/healthz").json()["data"]["events"]
        assert health["dropped"] == 0 and health["error"] is None and "postgresql://" in health["store"]
    stats = api.get("/api/v1/containers/e2e/proxy/stats", params={"period": "24h"}).json()["data"]
    assert stats["totalEvents"] >= FLOOD
