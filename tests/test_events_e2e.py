"""Events through a real proxy with real scripts: one per run with the right fields, filters
and paging that return exactly the right rows, stats that match an independent count, the
live stream with resume, run history after deletion, the catalog."""

from __future__ import annotations

import json
import math
import shutil
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Mitmdump, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, client, home, proxy, upstream  # noqa: F401 - fixtures

EVENTS = "/api/v1/containers/e2e/proxy/events"
ULID_LEN = 26


def events(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get(EVENTS, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["events"])


def all_events(api: httpx.Client) -> list[dict[str, Any]]:
    """Every event of the container, newest first, walking the cursor."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        data = api.get(EVENTS, params=params).json()["data"]
        found += data["events"]
        cursor = data["next_cursor"]
        if cursor is None:
            return found


def runs_of(api: httpx.Client, hook_id: str, count: int) -> list[dict[str, Any]]:
    return list(wait_for(lambda: (e := events(api, hookId=hook_id)) and len(e) >= count and e, 10, "events"))


def fire(client: httpx.Client, path: str, act: str, **headers: str) -> httpx.Response:
    return client.get(f"http://auth.test{path}", headers={"x-act": act, **headers})


@pytest.mark.parametrize(
    ("act", "extra", "outcome", "status"),
    [
        ("continue", {}, "continued", 200),
        ("modify", {}, "modified", 200),
        ("respond", {}, "responded", 418),
        ("block", {}, "blocked", 403),
        ("crash", {}, "failed", 502),
        ("hang", {"timeout": 300}, "timeout", 504),
        ("respond", {"mode": "async"}, "observed", 200),
    ],
)
def test_each_outcome_is_one_event_with_its_fields(
    client: httpx.Client, api: httpx.Client, tmp_path: Path, act: str, extra: dict[str, Any], outcome: str,
    status: int,
) -> None:  # fmt: skip
    data = set_hooks(
        api, "e2e", "auth", [hook("/ev/**", "/act.py", applies_to={"groups": ["locals"]}, **extra)]
    )
    hook_id = data["hooks"][0]["id"]
    response = fire(client, "/ev/x?q=1", act, **{"x-pidfile": str(tmp_path / "pids")})
    assert response.status_code == status
    [event] = runs_of(api, hook_id, 1)
    assert len(event["id"]) == ULID_LEN and event["ts"].endswith("Z")
    assert event["instance"].rpartition(":")[2].isdigit()  # host:pid of the proxy (no hooks_instance)
    varying = {
        "id": None, "ts": None, "duration_ms": None, "stderr": None, "reason": None, "error": None,
        "changes": None,  # each answer's: test_run_changes
        "instance": None,
    }  # fmt: skip
    assert event | varying == {
        "id": None, "ts": None, "kind": "run", "container": "e2e", "service": "auth", "hook_id": hook_id,
        "hook_name": None, "hook_version": 1, "position": 0, "phase": "request",
        "mode": extra.get("mode", "sync"), "method": "GET",
        "host": "auth.test", "path": "/ev/x", "client": "127.0.0.1", "groups": ["locals"],
        "outcome": outcome, "blocked": outcome == "blocked", "reason": None,
        "status": None if outcome == "observed" else status,
        "exit_code": {"continued": 0, "modified": 0, "responded": 0, "blocked": 0, "failed": 3,
                      "timeout": None, "observed": 0}[outcome],
        "duration_ms": None, "script": "/act.py", "runtime": "python", "error": None, "stderr": None,
        "file_version": None, "changes": None, "message": None, "data": None, "cached": False,
        "instance": None,
    }  # fmt: skip
    assert (event["changes"] is not None) == (outcome in ("modified", "responded"))
    if outcome == "blocked":
        assert event["reason"] == "blocked by python"
    if outcome in ("failed", "timeout"):
        assert event["error"]
    if outcome != "timeout":
        assert event["duration_ms"] > 0
    # exactly one: nothing more arrives for this hook
    assert len(events(api, hookId=hook_id)) == 1


def test_intercepted_response_is_a_second_event(client: httpx.Client, api: httpx.Client) -> None:
    [hook_id] = [h["id"] for h in set_hooks(api, "e2e", "auth", [hook("/twice", "/act.py")])["hooks"]]
    assert fire(client, "/twice", "edit-response").status_code == 299
    found = runs_of(api, hook_id, 2)
    assert [(e["phase"], e["outcome"], e["status"]) for e in found] == [
        ("response", "modified", 299),
        ("request", "continued", 200),
    ]


def test_filters_and_paging_return_exactly_the_right_rows(client: httpx.Client, api: httpx.Client) -> None:
    data = set_hooks(api, "e2e", "auth", [hook("/f/block", "/act.py"), hook("/f/**", "/act.sh")])
    for i in range(6):
        fire(client, "/f/block", "block")
        fire(client, f"/f/{i}", "respond" if i % 2 else "continue")
    blocker, other = (h["id"] for h in data["hooks"])
    runs_of(api, other, 6)
    runs_of(api, blocker, 6)
    everything = all_events(api)
    assert len({e["id"] for e in everything}) == len(everything)

    def expect(params: dict[str, Any], keep: Any) -> None:
        assert [e["id"] for e in events(api, limit=500, **params)] == [e["id"] for e in everything if keep(e)]

    expect({"hookId": other}, lambda e: e["hook_id"] == other)
    expect({"service": "auth"}, lambda e: e["service"] == "auth")
    expect({"blocked": "true"}, lambda e: e["blocked"])
    expect({"blocked": "false"}, lambda e: not e["blocked"])
    expect({"outcome": ["responded", "blocked"]}, lambda e: e["outcome"] in ("responded", "blocked"))
    expect({"outcome": "responded,blocked"}, lambda e: e["outcome"] in ("responded", "blocked"))
    expect(
        {"outcome": "continued", "hookId": other},
        lambda e: e["outcome"] == "continued" and e["hook_id"] == other,
    )
    expect({"kind": "config_reload"}, lambda e: e["kind"] == "config_reload")
    mine = [e for e in everything if e["hook_id"] in (blocker, other)]
    since, until = mine[-3]["ts"], mine[2]["ts"]
    expect({"since": since, "until": until}, lambda e: since <= e["ts"] < until)
    # Paging: small pages walk exactly the same rows, newest first.
    paged, cursor = [], None
    while True:
        params: dict[str, Any] = {"hookId": other, "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = api.get(EVENTS, params=params).json()["data"]
        paged += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [e["id"] for e in everything if e["hook_id"] == other]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "501"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"blocked": "maybe"}, "blocked"),
        ({"outcome": "exploded"}, "outcome[0]"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "abc"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_filters_are_422(api: httpx.Client, params: dict[str, str], field: str) -> None:
    response = api.get(EVENTS, params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "Invalid query" and body["code"] == "VALIDATION_ERROR"
    assert field in [d["field"] for d in body["details"]], body


def test_stats_match_an_independent_count(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [hook("/s/block", "/act.sh"), hook("/s/**", "/act.py")])
    set_hooks(api, "e2e", "billing", [hook("/**", "/act.sh")])
    for i in range(4):
        fire(client, "/s/block", "block")
        fire(client, f"/s/{i}", "continue")
        client.get(f"http://billing.test/b/{i}", headers={"x-act": "respond"})
    wait_for(
        lambda: sum(e["service"] == "billing" for e in events(api, limit=500)) >= 4, 10, "billing events"
    )
    stats = api.get("/api/v1/containers/e2e/proxy/stats", params={"period": "24h"}).json()["data"]
    runs = [e for e in all_events(api) if e["kind"] == "run"]
    total, blocked = len(runs), sum(e["blocked"] for e in runs)
    durations = sorted(e["duration_ms"] for e in runs if e["duration_ms"] is not None)

    def avg(items: list[dict[str, Any]]) -> float:
        values = [e["duration_ms"] for e in items if e["duration_ms"] is not None]
        return round(sum(values) / len(values), 3) if values else 0

    assert stats["totalEvents"] == total and stats["blockedEvents"] == blocked
    assert stats["blockRate"] == round(blocked * 100 / total, 2)
    assert stats["avgDurationMs"] == pytest.approx(avg(runs), abs=0.002)
    assert stats["p95DurationMs"] == round(durations[math.ceil(0.95 * len(durations)) - 1], 3)
    counts = Counter(e["outcome"] for e in runs)
    assert {k: v for k, v in stats["eventsByOutcome"].items() if v} == dict(counts)
    by_service = {s["service"]: (s["total"], s["blocked"]) for s in stats["serviceBreakdown"]}
    for service in {e["service"] for e in runs}:
        mine = [e for e in runs if e["service"] == service]
        assert by_service[service] == (len(mine), sum(e["blocked"] for e in mine))
    by_hook = {h["hookId"]: h for h in stats["hookBreakdown"]}
    for hook_id in {e["hook_id"] for e in runs}:
        mine = [e for e in runs if e["hook_id"] == hook_id]
        assert (by_hook[hook_id]["total"], by_hook[hook_id]["blocked"]) == (
            len(mine),
            sum(e["blocked"] for e in mine),
        )
        assert by_hook[hook_id]["avgDurationMs"] == pytest.approx(avg(mine), abs=0.002)
    days = Counter(e["ts"][:10] for e in runs)
    assert {d["date"]: (d["total"], d["allowed"]) for d in stats["dailyActivity"]} == {
        day: (n, n - sum(e["blocked"] for e in runs if e["ts"][:10] == day)) for day, n in days.items()
    }
    assert stats["dropped"] == 0
    bad = api.get("/api/v1/containers/e2e/proxy/stats", params={"period": "1y"})
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "period"


class Stream:
    """Reads an SSE stream in a thread, collecting (id, event) pairs."""

    def __init__(self, api: httpx.Client, last_event_id: str | None = None, **params: str):
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.thread = threading.Thread(target=self._run, args=(api, headers, params), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "stream did not open"

    def _run(self, api: httpx.Client, headers: dict[str, str], params: dict[str, str]) -> None:
        try:
            self._read(api, headers, params)
        except httpx.HTTPError:
            if not self.stop.is_set():
                raise  # a closed stream may see its server go away; an open one must not

    def _read(self, api: httpx.Client, headers: dict[str, str], params: dict[str, str]) -> None:
        with (
            httpx.Client(base_url=str(api.base_url), timeout=httpx.Timeout(30, read=60)) as http,
            http.stream("GET", EVENTS + "/stream", headers=headers, params=params) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event_id = None
            for line in response.iter_lines():
                if line.startswith("retry:"):
                    self.ready.set()
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    self.received.append((event_id or "", json.loads(line[6:])))
                if self.stop.is_set():
                    return

    def close(self) -> None:
        self.stop.set()


def test_stream_delivers_new_events_in_order_and_resumes(client: httpx.Client, api: httpx.Client) -> None:
    [hook_id] = [h["id"] for h in set_hooks(api, "e2e", "auth", [hook("/live/**", "/act.sh")])["hooks"]]
    fire(client, "/live/before", "continue")  # recorded before the client connects: not sent
    runs_of(api, hook_id, 1)
    stream = Stream(api, hookId=hook_id)
    marks = [uuid.uuid4().hex[:8] for _ in range(3)]
    for mark in marks:
        fire(client, f"/live/{mark}", "continue")
    wait_for(lambda: len(stream.received) >= 3, 15, "three streamed events")
    assert [e["path"] for _, e in stream.received] == [f"/live/{m}" for m in marks]
    ids = [int(i) for i, _ in stream.received]
    assert ids == sorted(ids)
    stream.close()
    # Resume after the first: the other two again, in order.
    resumed = Stream(api, last_event_id=str(ids[0]), hookId=hook_id)
    wait_for(lambda: len(resumed.received) >= 2, 15, "resumed events")
    assert [e["path"] for _, e in resumed.received] == [f"/live/{m}" for m in marks[1:]]
    resumed.close()
    fire(client, "/live/wake", "continue")  # lets both reader threads see their stop flag


def test_run_history_survives_deleting_the_hook(client: httpx.Client, api: httpx.Client) -> None:
    [hook_id] = [h["id"] for h in set_hooks(api, "e2e", "auth", [hook("/hist", "/act.py")])["hooks"]]
    for act in ("continue", "block", "continue"):
        fire(client, "/hist", act)
    runs_of(api, hook_id, 3)
    set_hooks(api, "e2e", "auth", [])  # the hook is gone
    url = f"/api/v1/containers/e2e/proxy/hooks/auth/{hook_id}/runs"
    runs = api.get(url).json()["data"]["runs"]
    assert [r["outcome"] for r in runs] == ["continued", "blocked", "continued"]
    assert [r["outcome"] for r in api.get(url, params={"last": 2}).json()["data"]["runs"]] == [
        "continued",
        "blocked",
    ]
    assert [r["outcome"] for r in api.get(url, params={"outcome": "blocked"}).json()["data"]["runs"]] == [
        "blocked"
    ]
    assert api.get(url, params={"last": 0}).status_code == 422
    assert api.get("/api/v1/containers/e2e/proxy/hooks/logs/x/runs").status_code == 404


def test_config_reloads_and_rejected_edits_are_events(api: httpx.Client, home: Path, proxy: Mitmdump) -> None:
    version = set_hooks(api, "e2e", "auth", [])["file_version"]
    wait_for(
        lambda: any(e["file_version"] == version for e in events(api, kind="config_reload")),
        10,
        "reload event",
    )
    path = home / "e2e.json"
    original = path.read_text()
    try:
        path.write_text('{"container": "e2e", "services": 7}')
        rejected = wait_for(lambda: events(api, kind="config_rejected"), 10, "rejected event")
        assert "services" in rejected[0]["error"]
    finally:
        path.write_text(original)
    wait_for(lambda: api.get("/healthz").json()["data"]["status"] == "ok", 10, "recovery")


def test_catalog_shows_what_will_run(api: httpx.Client, home: Path) -> None:
    shutil.copy(home / "scripts" / "act.sh", home / "scripts" / "act-plain")  # not executable
    shutil.copy(home / "scripts" / "act.sh", home / "scripts" / "missing.sh")
    set_hooks(api, "e2e", "auth", [
        hook("/a", "/act.py"), hook("/b", "/act.js", enabled=False, mode="async"), hook("/c", "/missing.sh"),
        hook("/d", "/act-plain"),
    ])  # fmt: skip
    (home / "scripts" / "missing.sh").unlink()  # gone after the hook was written
    data = api.get("/api/v1/containers/e2e/proxy/catalog").json()["data"]
    auth = data["services"]["auth"]
    assert [(h["position"], h["runtime"], h["exists"], h["enabled"], h["mode"]) for h in auth] == [
        (0, "python", True, True, "sync"),
        (1, "node", True, False, "async"),
        (2, "bash", False, True, "sync"),
        (3, "exec", True, True, "sync"),
    ]
    assert auth[2]["problem"] == "script file not found" and auth[3]["problem"].startswith("not executable")
    assert auth[0]["file"].endswith("scripts/act.py") and data["services"]["billing"] == []


def test_health_reports_the_events_store(api: httpx.Client) -> None:
    health = api.get("/healthz").json()["data"]["events"]
    assert health["recording"] is True and health["dropped"] == 0 and health["error"] is None


FLOOD = 5000


def test_a_flood_through_the_proxy_is_recorded_completely(
    proxy: Mitmdump, api: httpx.Client, home: Path
) -> None:
    """5,000 flows as fast as 8 clients can push them through a cheap hook (a copy of `true`, run
    directly): every run is recorded, none dropped. (Drops under a tiny queue, counted exactly:
    test_events_store.)"""
    true = shutil.which("true")
    assert true is not None
    shutil.copy(true, home / "scripts" / "true-exec")
    [hook_id] = [
        h["id"] for h in set_hooks(api, "e2e", "billing", [hook("/flood/**", "/true-exec")])["hooks"]
    ]
    dropped_before = api.get("/healthz").json()["data"]["events"]["dropped"]

    def push(worker: int) -> list[int]:
        with proxy.client() as http:
            return [
                http.get(f"http://billing.test/flood/{worker}/{n}").status_code for n in range(FLOOD // 8)
            ]

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for batch in pool.map(push, range(8)) for s in batch]
    assert statuses == [200] * FLOOD

    def recorded() -> int:
        stats = api.get("/api/v1/containers/e2e/proxy/stats", params={"period": "24h"}).json()["data"]
        return int(next((h["total"] for h in stats["hookBreakdown"] if h["hookId"] == hook_id), 0))

    wait_for(lambda: recorded() >= FLOOD, 30, "every run recorded")
    assert recorded() == FLOOD
    assert api.get("/healthz").json()["data"]["events"]["dropped"] == dropped_before == 0
