"""Captured exchanges through a real mitmdump: what a hook with `"capture"` keeps of each run
(bodies up to `hooks_capture_body_max`, with `truncated`; Authorization and Cookie redacted unless
the hook says otherwise), served per event and exported as HAR 1.2 — validated against the HAR
1.2 JSON Schema (the `har-schema` package's, in tests/har_schema/) and read back by a third-party
HAR library (haralyzer)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from haralyzer import HarEntry
from jsonschema import Draft6Validator
from referencing import Registry, Resource

from tests.harness import Mitmdump, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, home, proxy, upstream  # noqa: F401 - fixtures

BODY_MAX = 64
PROXY_OPTIONS = ("--set", f"hooks_capture_body_max={BODY_MAX}")
EVENTS = "/api/v1/containers/e2e/proxy/events"
HAR_SCHEMA = Path(__file__).parent / "har_schema"


@pytest.fixture(scope="module")
def hook_ids(api: httpx.Client) -> dict[str, str]:
    hooks = set_hooks(
        api, "e2e", "auth",
        [hook("/cap/**", "/act.py", capture=True),
         hook("/open/**", "/act.py", capture={"redact": []}),
         hook("/plain/**", "/act.py")],
    )["hooks"]  # fmt: skip
    return {"cap": hooks[0]["id"], "open": hooks[1]["id"], "plain": hooks[2]["id"]}


def run_event(api: httpx.Client, hook_id: str, path: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        events = api.get(EVENTS, params={"hookId": hook_id}).json()["data"]["events"]
        return next((e for e in events if e["path"] == path), None)

    event: dict[str, Any] = wait_for(found, 10, f"the event of {path}")
    return event


def exchange(api: httpx.Client, event_id: str) -> dict[str, Any]:
    response = api.get(f"{EVENTS}/{event_id}/exchange")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    assert data["event"]["id"] == event_id
    return data["exchange"]


def headers_of(message: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in message["headers"]}


def test_a_capturing_hook_keeps_the_exchange_bounded_and_redacted(
    proxy: Mitmdump, api: httpx.Client, hook_ids: dict[str, str], home: Path
) -> None:
    sent = "a" * 50 + "é" * 40  # 130 bytes of UTF-8: cut inside a character at 64
    with proxy.client() as http:
        response = http.post(
            "http://auth.test/cap/one?x=1",
            content=sent.encode(),
            headers={
                "Authorization": "Bearer top-secret",
                "Cookie": "session=cookie-secret",
                "x-keep": "kept",
            },
        )
    assert response.status_code == 200
    event = run_event(api, hook_ids["cap"], "/cap/one")
    captured = exchange(api, event["id"])
    request = captured["request"]
    assert request["method"] == "POST" and request["url"] == "http://auth.test/cap/one?x=1"
    assert request["body_size"] == len(sent.encode()) and request["truncated"] is True
    assert sent.encode().startswith(request["body"].encode()) and len(request["body"].encode()) <= BODY_MAX
    assert len(request["body"].encode()) >= BODY_MAX - 3  # only the split character was dropped
    headers = headers_of(request)
    assert headers["authorization"] == "[redacted]" and headers["cookie"] == "[redacted]"
    assert headers["x-keep"] == "kept"
    assert captured["redacted"] == ["authorization", "cookie"]
    answer = captured["response"]
    assert answer["status"] == 200 and answer["body_size"] == len(response.content)
    assert answer["truncated"] == (len(response.content) > BODY_MAX)
    assert response.content.startswith(answer["body"].encode())
    # The secrets never reached the store, in any column.
    with sqlite3.connect(home / "confdir" / "events.db") as db:
        rows = db.execute("SELECT data, exchange FROM events WHERE id = ?", (event["id"],)).fetchall()
    assert rows and all("secret" not in str(column) for column in rows[0])
    assert "exchange" not in event  # the event itself stays small


def test_redact_nothing_keeps_the_credentials(
    proxy: Mitmdump, api: httpx.Client, hook_ids: dict[str, str]
) -> None:
    with proxy.client() as http:
        http.get("http://auth.test/open/x", headers={"Authorization": "Bearer visible", "Cookie": "c=1"})
    captured = exchange(api, run_event(api, hook_ids["open"], "/open/x")["id"])
    headers = headers_of(captured["request"])
    assert headers["authorization"] == "Bearer visible" and headers["cookie"] == "c=1"
    assert captured["redacted"] == []


def test_binary_bodies_and_blocked_runs_are_captured(
    proxy: Mitmdump, api: httpx.Client, hook_ids: dict[str, str]
) -> None:
    with proxy.client() as http:
        response = http.put("http://auth.test/cap/bin", content=b"\xff\x00\xfe", headers={"x-act": "block"})
    assert response.status_code == 403
    captured = exchange(api, run_event(api, hook_ids["cap"], "/cap/bin")["id"])
    assert captured["request"]["body"] is None and captured["request"]["body_base64"] == "/wD+"
    assert captured["response"]["status"] == 403  # what the client got: the proxy's refusal
    assert captured["response"]["body"].startswith('{"error": "blocked by proxy hook"')  # within 64 bytes
    assert captured["response"]["truncated"] is True


def test_runs_of_other_hooks_have_no_exchange(
    proxy: Mitmdump, api: httpx.Client, hook_ids: dict[str, str]
) -> None:
    with proxy.client() as http:
        http.get("http://auth.test/plain/x")
    event = run_event(api, hook_ids["plain"], "/plain/x")
    response = api.get(f"{EVENTS}/{event['id']}/exchange")
    assert response.status_code == 404
    assert 'does not set "capture"' in response.json()["details"][0]["reason"]
    missing = api.get(f"{EVENTS}/01hzzzzzzzzzzzzzzzzzzzzzzz/exchange")
    assert missing.status_code == 404 and missing.json()["details"][0]["field"] == "eventId"


def har_validator() -> Draft6Validator:
    schemas = {p.name: json.loads(p.read_text()) for p in HAR_SCHEMA.glob("*.json")}
    registry: Registry[Any] = Registry().with_resources(
        (name, Resource.from_contents(schema)) for name, schema in schemas.items()
    )
    return Draft6Validator(schemas["har.json"], registry=registry)


def test_the_har_export_is_valid_har_1_2(
    proxy: Mitmdump, api: httpx.Client, hook_ids: dict[str, str]
) -> None:
    paths = [f"/cap/har{n}" for n in range(3)]
    with proxy.client() as http:
        for path in paths:
            http.post(
                f"http://auth.test{path}?q={path[-1]}", json={"n": path}, headers={"Authorization": "x"}
            )
        http.get("http://auth.test/plain/har")  # not captured: not exported
    for path in paths:
        run_event(api, hook_ids["cap"], path)
    response = api.get(
        "/api/v1/containers/e2e/proxy/events.har", params={"hookId": hook_ids["cap"], "limit": 3}
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="e2e-events.har"'
    har = response.json()
    validator = har_validator()
    broken = {**har, "log": {**har["log"], "entries": [{**har["log"]["entries"][0], "timings": {}}]}}
    assert not validator.is_valid(broken)  # the schema's references resolve: it does reject
    errors = sorted(validator.iter_errors(har), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    entries = har["log"]["entries"]
    assert [urlpath(e["request"]["url"]) for e in entries] == paths  # the newest three, oldest first
    assert all(e["_proxyHooks"]["hook"] == hook_ids["cap"] for e in entries)
    for entry in entries:
        parsed = HarEntry(entry)  # a third-party reader of HAR entries
        assert parsed.request.method == "POST" and parsed.response.status == 200
        assert parsed.request.get_header_value("Authorization") == "[redacted]"
        assert json.loads(entry["request"]["postData"]["text"]) == {"n": urlpath(entry["request"]["url"])}
        assert entry["request"]["queryString"] == [
            {"name": "q", "value": urlpath(entry["request"]["url"])[-1]}
        ]
    everything = api.get("/api/v1/containers/e2e/proxy/events.har", params={"hookId": hook_ids["plain"]})
    assert everything.json()["log"]["entries"] == []


def urlpath(url: str) -> str:
    return httpx.URL(url).path


def test_har_filters_are_the_events_filters(api: httpx.Client) -> None:
    response = api.get("/api/v1/containers/e2e/proxy/events.har", params={"limit": 501})
    assert response.status_code == 422 and response.json()["details"][0]["field"] == "limit"
