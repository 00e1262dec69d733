"""GET /metrics after known traffic through a real mitmdump: each counter, read back with
prometheus_client's own parser, equals a count kept independently — the requests this test sent,
what the client got back, the events store's rows. And a real Prometheus server (Debian's
`prometheus`, when installed) scrapes it, with the bearer token where one is set."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ApiProcess, write_container
from tests.harness import Mitmdump, free_port, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, home, proxy, upstream  # noqa: F401 - fixtures

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def stored_rows(events_db: Path, where: str = "1", *args: Any) -> int:
    """Counted straight from the SQLite file: independent of the recorder's own counters."""
    with sqlite3.connect(events_db) as db:
        return int(db.execute(f"SELECT count(*) FROM events WHERE {where}", args).fetchone()[0])


def test_every_counter_equals_an_independent_count(proxy: Mitmdump, api: httpx.Client, home: Path) -> None:
    python = set_hooks(api, "e2e", "auth", [hook("/m/**", "/act.py"), hook("/b/**", "/act.sh")])["hooks"]
    set_hooks(api, "e2e", "billing", [])
    py_id, sh_id = python[0]["id"], python[1]["id"]
    events_db = home / "confdir" / "events.db"
    wait_for(lambda: scrape(api)["proxy_hooks_events_written_total", frozenset()] == stored_rows(events_db))
    before = scrape(api)
    sent = {"continued": 0, "blocked": 0, "unhooked": 0, "billing": 0, "bash_blocked": 0}
    with proxy.client() as http:
        for n in range(3):
            response = http.get(f"http://auth.test/m/c{n}", headers={"x-act": "continue"})
            assert response.status_code == 200 and response.headers["x-proxy-hooks-hook"] == py_id
            sent["continued"] += 1
        for n in range(2):
            response = http.get(f"http://auth.test/m/b{n}", headers={"x-act": "block"})
            assert response.status_code == 403
            sent["blocked"] += 1
        for n in range(2):
            response = http.get(f"http://auth.test/b/{n}", headers={"x-act": "exit2"})
            assert response.status_code == 403 and response.headers["x-proxy-hooks-hook"] == sh_id
            sent["bash_blocked"] += 1
        for n in range(4):
            response = http.get(f"http://auth.test/other/{n}")
            assert response.status_code == 200 and "x-proxy-hooks-hook" not in response.headers
            sent["unhooked"] += 1
        response = http.get("http://billing.test/x")
        assert response.status_code == 200
        sent["billing"] += 1
        assert http.get("http://unrelated.test/").status_code != 0  # no service: not a flow of ours
    runs = sent["continued"] + sent["blocked"] + sent["bash_blocked"]
    for _ in range(3):
        api.get("/api/v1/containers/e2e/proxy/hooks/auth")
    api.get("/no/such/route")
    written = "proxy_hooks_events_written_total"

    def settled() -> bool:
        """Every run stored, and the counter caught up: the writer counts a batch only after
        its commit, so a scrape between the two would see the rows but not yet the count."""
        rows = stored_rows(events_db)
        return rows - value(before, written) >= runs and value(scrape(api), written) == rows

    wait_for(settled)
    after = scrape(api)

    flows = "proxy_hooks_flows_total"
    assert delta(before, after, flows, container="e2e", service="auth", hooked="true") == runs
    assert delta(before, after, flows, container="e2e", service="auth", hooked="false") == sent["unhooked"]
    assert delta(before, after, flows, container="e2e", service="billing", hooked="false") == sent["billing"]

    run = "proxy_hooks_runs_total"
    auth = {"container": "e2e", "service": "auth"}
    assert delta(before, after, run, **auth, hook=py_id, outcome="continued") == sent["continued"]
    assert delta(before, after, run, **auth, hook=py_id, outcome="blocked") == sent["blocked"]
    assert delta(before, after, run, **auth, hook=sh_id, outcome="blocked") == sent["bash_blocked"]
    for hook_id in (py_id, sh_id):  # the events store agrees, hook by hook and outcome by outcome
        for outcome in ("continued", "blocked"):
            rows = stored_rows(events_db, "hook_id = ? AND outcome = ? AND kind = 'run'", hook_id, outcome)
            assert value(after, run, **auth, hook=hook_id, outcome=outcome) == rows

    seconds = "proxy_hooks_run_duration_seconds_count"
    assert delta(before, after, seconds, runtime="python") == sent["continued"] + sent["blocked"]
    assert delta(before, after, seconds, runtime="bash") == sent["bash_blocked"]
    inf = "proxy_hooks_run_duration_seconds_bucket"
    assert delta(before, after, inf, runtime="bash", le="+Inf") == sent["bash_blocked"]

    route = "/api/v1/containers/{id}/proxy/hooks/{service}"
    assert (
        delta(before, after, "proxy_hooks_api_requests_total", method="GET", route=route, status="200") == 3
    )
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert delta(before, after, "proxy_hooks_api_requests_total", **unmatched) == 1

    assert value(after, written) == stored_rows(events_db)
    assert (
        value(after, "proxy_hooks_events_dropped_total")
        == api.get("/healthz").json()["data"]["events"]["dropped"]
    )
    version = int(api.get("/api/v1/containers/e2e/proxy/hooks").headers["ETag"].removeprefix("file:v"))
    assert value(after, "proxy_hooks_config_version", container="e2e") == version


def test_a_refused_hand_edit_is_counted(proxy: Mitmdump, api: httpx.Client, home: Path) -> None:
    path = home / "e2e.json"
    before = scrape(api)
    good = path.read_text()
    broken = json.loads(good)
    broken["services"]["auth"]["hosts"] = "not a list"
    try:
        path.write_text(json.dumps(broken))
        wait_for(
            lambda: value(scrape(api), "proxy_hooks_config_valid", container="e2e") == 0, 10, "the refusal"
        )
        after = scrape(api)
        assert delta(before, after, "proxy_hooks_config_rejected_total", container="e2e") == 1
        assert api.get("/healthz").json()["data"]["status"] == "degraded"
    finally:
        path.write_text(good)
    wait_for(lambda: value(scrape(api), "proxy_hooks_config_valid", container="e2e") == 1, 10, "the fix")


@pytest.fixture(scope="module")
def token_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    process = ApiProcess(
        write_container(tmp_path_factory.mktemp("metrics") / "demo.json"), "--token", "m-token"
    )
    yield process
    process.stop()


def test_metrics_need_the_token_like_every_route(token_api: ApiProcess) -> None:
    with httpx.Client(base_url=token_api.url) as http:
        assert http.get("/metrics").status_code == 401
        answer = http.get("/metrics", headers={"Authorization": "Bearer m-token"})
    assert answer.status_code == 200
    assert 'proxy_hooks_config_version{container="demo"} 1.0' in answer.text


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(not PROMETHEUS, reason="no Prometheus here: apt-get install -y prometheus (.ci/run does)")
def test_a_real_prometheus_scrapes_both_apis(
    proxy: Mitmdump, api: httpx.Client, token_api: ApiProcess, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    with proxy.client() as http:
        assert http.get("http://billing.test/scraped").status_code == 200
    expected = value(
        scrape(api), "proxy_hooks_flows_total", container="e2e", service="billing", hooked="false"
    )
    port = free_port()
    config = tmp_path / "prometheus.yml"
    targets = {"proxy": proxy.api_url, "api": token_api.url}
    jobs = [
        {
            "job_name": job,
            "scrape_interval": "1s",
            "static_configs": [{"targets": [url.removeprefix("http://")]}],
            **({"authorization": {"credentials": "m-token"}} if job == "api" else {}),
        }
        for job, url in targets.items()
    ]
    config.write_text(
        json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs})
    )  # YAML ⊇ JSON
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as prom:

            def query(expr: str) -> float | None:
                try:
                    result = prom.get("/api/v1/query", params={"query": expr}).json()["data"]["result"]
                except (httpx.HTTPError, ValueError, KeyError):
                    return None  # not up yet
                return float(result[0]["value"][1]) if result else None

            flows = 'proxy_hooks_flows_total{job="proxy",service="billing",hooked="false"}'
            wait_for(lambda: query(flows) == expected, 60, "Prometheus to scrape the proxy's API")
            version = 'proxy_hooks_config_version{job="api",container="demo"}'
            assert wait_for(lambda: query(version), 60, "Prometheus to scrape with the token") == 1.0
    finally:
        server.terminate()
        server.wait(15)
