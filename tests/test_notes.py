"""Notes from outside the proxy (seed 003's POST of an event) and the stats that come with them,
through a real mitmdump: a note is stored before its 201, listed, filtered by kind, streamed,
counted in `notes` and `eventsByKind` and never in the run figures; `recentClients` against an
independent count over runs from several client addresses."""

from __future__ import annotations

import http.client
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon.events import MAX_NOTE_DATA_BYTES, MAX_NOTE_MESSAGE, Event
from tests.conftest import ApiProcess
from tests.harness import Mitmdump, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, client, home, proxy, upstream  # noqa: F401 - fixtures
from tests.test_events_e2e import EVENTS, Stream, all_events, events, fire, runs_of
from tests.test_events_store import old_store

STATS = "/api/v1/containers/e2e/proxy/stats"
SEED_ID = "01hz8x9k2b3c4d5e6f7g8h9j0k"  # a well-formed hook id no hook here has


def stats(api: httpx.Client) -> dict[str, Any]:
    response = api.get(STATS, params={"period": "24h"})
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def post_note(api: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return api.post(EVENTS, json=body)


def test_a_note_is_stored_listed_streamed_and_counted_apart_from_runs(
    client: httpx.Client, api: httpx.Client
) -> None:
    [hook_id] = [h["id"] for h in set_hooks(api, "e2e", "auth", [hook("/n/**", "/act.py")])["hooks"]]
    for act in ("continue", "block"):
        fire(client, "/n/x", act)
    runs_of(api, hook_id, 2)
    before = stats(api)
    stream = Stream(api, kind="note")
    mark = uuid.uuid4().hex
    body = {"message": f"deployed {mark}", "hookId": hook_id, "data": {"commit": mark, "n": [1, 2]}}
    response = post_note(api, body)
    assert response.status_code == 201, response.text
    assert response.headers["ETag"] == api.get("/api/v1/containers/e2e/proxy/hooks").headers["ETag"]
    answer = response.json()
    assert answer["statusCode"] == 201 and answer["message"] == "Event recorded"
    note = answer["data"]
    assert note["kind"] == "note" and note["container"] == "e2e"
    assert (note["message"], note["data"]) == (body["message"], body["data"])
    assert (note["service"], note["hook_id"]) == ("auth", hook_id)  # the hook's service was found
    assert note["outcome"] is None and note["changes"] is None
    # Stored before the 201: the very next read has it, exactly as answered.
    assert events(api, kind="note")[0] == note
    assert all(e["kind"] == "note" for e in events(api, kind="note", limit=500))
    assert note["id"] not in {e["id"] for e in events(api, kind="run", limit=500)}
    # Never a run: not in the hook's run history, not in the run totals.
    runs = api.get(f"/api/v1/containers/e2e/proxy/hooks/auth/{hook_id}/runs").json()["data"]["runs"]
    assert note["id"] not in {r["id"] for r in runs} and len(runs) == 2
    wait_for(lambda: [e["id"] for _, e in stream.received] == [note["id"]], 10, "the streamed note")
    stream.close()
    assert post_note(api, {"message": "wake"}).status_code == 201  # lets the reader see its stop flag
    fire(client, "/n/y", "continue")
    wait_for(lambda: len(events(api, hookId=hook_id, kind="run")) == 3, 10, "the third run")
    after = stats(api)
    assert after["notes"] == before["notes"] + 2
    assert after["eventsByKind"]["note"] == before["eventsByKind"]["note"] + 2
    assert after["eventsByKind"]["run"] == after["totalEvents"] == before["totalEvents"] + 1  # the run only
    assert sum(after["eventsByOutcome"].values()) == after["totalEvents"]


def test_events_by_kind_and_notes_match_an_independent_count(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "billing", [hook("/**", "/act.sh")])
    for i in range(3):
        client.get(f"http://billing.test/k/{i}", headers={"x-act": "continue"})
        assert post_note(api, {"message": f"note {i}", "service": "billing"}).status_code == 201
    wait_for(lambda: len(events(api, service="billing", kind="run", limit=500)) >= 3, 10, "billing runs")
    figures = stats(api)
    everything = all_events(api)  # all within the 24h period
    kinds = Counter(e["kind"] for e in everything)
    assert figures["eventsByKind"] == {
        kind: kinds.get(kind, 0) for kind in ("run", "dry_run", "config_reload", "config_rejected", "note")
    }
    assert figures["notes"] == kinds["note"] >= 3
    assert figures["totalEvents"] == kinds["run"]


def test_recent_clients_match_an_independent_count(proxy: Mitmdump, api: httpx.Client) -> None:
    """Runs from three loopback addresses, interleaved (the client binds its source address:
    http.client can, httpx cannot through a proxy)."""
    set_hooks(api, "e2e", "auth", [hook("/rc/**", "/act.sh")])
    plan = ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.4", "127.0.0.3", "127.0.0.2"]
    for n, address in enumerate(plan):
        connection = http.client.HTTPConnection(
            "127.0.0.1", proxy.port, timeout=30, source_address=(address, 0)
        )
        try:
            connection.request("GET", f"http://auth.test/rc/{n}", headers={"x-act": "continue"})
            assert connection.getresponse().status == 200
        finally:
            connection.close()
    wait_for(
        lambda: sum(e["path"].startswith("/rc/") for e in events(api, kind="run", limit=500)) >= len(plan),
        10,
        "the runs",
    )
    runs = [e for e in all_events(api) if e["kind"] == "run"]  # newest first
    assert [e["client"] for e in runs if e["path"].startswith("/rc/")] == plan[::-1]
    seen: dict[str, dict[str, Any]] = {}
    for e in runs:
        entry = seen.setdefault(e["client"], {"address": e["client"], "lastSeen": e["ts"], "runs": 0})
        entry["runs"] += 1
        entry["lastSeen"] = max(entry["lastSeen"], e["ts"])
    # Most recent first; on an equal time, the one recorded later (the dict keeps newest-first order).
    expected = sorted(seen.values(), key=lambda c: c["lastSeen"], reverse=True)[:10]
    assert stats(api)["recentClients"] == expected
    assert [c["address"] for c in expected[:3]] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def _big(size: int) -> dict[str, Any]:
    return {"blob": "x" * (size - len('{"blob":""}'))}


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "message", "required"),
        ({"message": ""}, "message", "must not be empty"),
        ({"message": "m" * (MAX_NOTE_MESSAGE + 1)}, "message", f"at most {MAX_NOTE_MESSAGE}"),
        ({"message": "m", "colour": 1}, "colour", "unknown field (allowed: message, service, hookId, data)"),
        ({"message": "m", "data": [1]}, "data", "must be a JSON object"),
        ({"message": "m", "data": _big(MAX_NOTE_DATA_BYTES + 1)}, "data", f"got {MAX_NOTE_DATA_BYTES + 1}"),
        ({"message": "m", "service": "nope"}, "service", "in container 'e2e' (defined: auth, billing)"),
        ({"message": "m", "service": "logs"}, "service", "not defined"),
        ({"message": "m", "hookId": "-bad name"}, "hookId", "hook's id (a 26-character ULID) or its name"),
        ({"message": "m", "hookId": SEED_ID}, "hookId", f"no hook {SEED_ID!r} in container 'e2e', by id"),
        ({"message": "m", "hookId": "no-such-name"}, "hookId", "no hook 'no-such-name' in container 'e2e'"),
        ({"message": 7}, "message", "string"),
    ],
)  # fmt: skip
def test_bad_notes_are_422_in_our_envelope_and_store_nothing(
    api: httpx.Client, body: dict[str, Any], field: str, reason: str
) -> None:
    notes = len(events(api, kind="note", limit=500))
    response = post_note(api, body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["statusCode"], error["code"], error["message"]) == (
        422,
        "VALIDATION_ERROR",
        "Invalid event",
    )
    [detail] = [d for d in error["details"] if d["field"] == field]
    assert reason in detail["reason"], detail
    assert len(events(api, kind="note", limit=500)) == notes


def test_a_note_at_the_data_bound_is_taken(api: httpx.Client) -> None:
    data = _big(MAX_NOTE_DATA_BYTES)
    assert len(json.dumps(data, separators=(",", ":")).encode()) == MAX_NOTE_DATA_BYTES
    assert post_note(api, {"message": "big", "data": data}).status_code == 201


def test_a_hook_of_another_service_is_422(api: httpx.Client) -> None:
    [hook_id] = [h["id"] for h in set_hooks(api, "e2e", "auth", [hook("/o/**", "/act.py")])["hooks"]]
    response = post_note(api, {"message": "m", "service": "billing", "hookId": hook_id})
    assert response.status_code == 422
    reason = (
        f"no hook {hook_id!r} in service 'billing', by id or name; "
        "GET /api/v1/containers/e2e/proxy/hooks lists them"
    )
    assert response.json()["details"] == [{"field": "hookId", "reason": reason}]


@pytest.mark.parametrize("service", [None, "auth"])
def test_a_note_names_its_hook_by_name_and_keeps_its_id_and_name(
    api: httpx.Client, service: str | None
) -> None:
    name = f"deploy-target-{uuid.uuid4().hex[:8]}"
    [hook_id] = [
        h["id"] for h in set_hooks(api, "e2e", "auth", [hook("/m/**", "/act.py", name=name)])["hooks"]
    ]
    body = {"message": "deployed", "hookId": name, **({"service": service} if service else {})}
    response = post_note(api, body)
    assert response.status_code == 201, response.text
    note = response.json()["data"]
    assert (note["service"], note["hook_id"], note["hook_name"]) == ("auth", hook_id, name)
    assert events(api, kind="note", hookId=hook_id)[0] == note  # found by the id it resolved to
    elsewhere = post_note(api, {"message": "m", "service": "billing", "hookId": name})
    assert elsewhere.status_code == 422
    assert elsewhere.json()["details"][0]["reason"].startswith(f"no hook {name!r} in service 'billing'")


def test_an_unknown_container_is_404(api: httpx.Client) -> None:
    response = api.post("/api/v1/containers/nope/proxy/events", json={"message": "m"})
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_a_standalone_api_records_notes_into_the_proxy_s_store(
    proxy: Mitmdump, api: httpx.Client, home: Path
) -> None:
    """`proxy-hooks api` on the store the proxy records into: its note is the proxy's too."""
    other = ApiProcess(home / "e2e.json", events=home / "confdir" / "events.db")
    try:
        with other.client() as http:
            response = http.post(EVENTS, json={"message": "from the standalone API"})
            assert response.status_code == 201, response.text
        note_id = response.json()["data"]["id"]
        assert events(api, kind="note")[0]["id"] == note_id
    finally:
        other.stop()


def test_a_standalone_api_serves_an_old_schema_file(home: Path, tmp_path: Path) -> None:
    """An events file from before notes, `changes` and `recentClients`: served, and it takes notes."""
    old = tmp_path / "old-events.db"
    old_store(
        old, [Event(container="e2e", service="auth", hook_id="h", outcome="continued", client="10.1.2.3")]
    )
    process = ApiProcess(home / "e2e.json", events=old)
    try:
        with process.client() as http:
            listed = http.get(EVENTS).json()["data"]["events"]
            assert [(e["client"], e["changes"]) for e in listed] == [("10.1.2.3", None)]
            assert http.post(EVENTS, json={"message": "upgraded"}).status_code == 201
            figures = http.get(STATS, params={"period": "24h"}).json()["data"]
            assert (figures["totalEvents"], figures["notes"]) == (1, 1)
            assert [c["address"] for c in figures["recentClients"]] == ["10.1.2.3"]
    finally:
        process.stop()
