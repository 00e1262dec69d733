"""The protocol, machine-readable (`GET /api/v1/protocol`), checked against the real thing: the
schemas validate the events scripts really read and the answers the test scripts really print,
through a real mitmdump; and the schema and the proxy's judge agree on answers, good and bad,
class by class through the proxy and at random beside it. Also the catalog's filters."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from addon.protocol import BadAnswer, parse_answer
from addon.protocol_schema import describe
from tests.harness import hook, set_hooks, wait_for
from tests.proxy_fixtures import api, client, home, proxy, upstream  # noqa: F401 - fixtures
from tests.test_answers import answers
from tests.test_events_e2e import events

PROTOCOL = "/api/v1/protocol"
CATALOG = "/api/v1/containers/e2e/proxy/catalog"
# The schema as this process builds it, for the test beside the proxy (the served one is the same:
# test_the_served_schemas_are_the_ones_built_here).
VALIDATOR = Draft202012Validator(describe().answer_schema)


@pytest.fixture(scope="module")
def protocol(api: httpx.Client) -> dict[str, Any]:
    response = api.get(PROTOCOL)
    assert response.status_code == 200, response.text
    assert "ETag" not in response.headers  # about no container
    body = response.json()
    assert body["message"] == "Protocol described"
    return dict(body["data"])


@pytest.fixture(scope="module")
def event_schema(protocol: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(protocol["event_schema"])
    return Draft202012Validator(protocol["event_schema"])


@pytest.fixture(scope="module")
def answer_schema(protocol: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(protocol["answer_schema"])
    return Draft202012Validator(protocol["answer_schema"])


def test_the_served_schemas_are_the_ones_built_here(protocol: dict[str, Any]) -> None:
    assert protocol == describe().model_dump(mode="json")


def test_phases_and_what_each_allows(protocol: dict[str, Any]) -> None:
    phases = {p["phase"]: p for p in protocol["phases"]}
    assert list(phases) == ["request", "response"]
    assert (phases["request"]["sync_eligible"], phases["request"]["async_eligible"]) == (True, True)
    assert (phases["response"]["sync_eligible"], phases["response"]["async_eligible"]) == (True, False)
    assert (phases["request"]["event_response"], phases["response"]["event_response"]) == (False, True)
    assert set(phases["request"]["answers"]) == {"request", "response", "block", "intercept_response"}
    assert protocol["version"] == 1 and "blocked" in protocol["outcomes"] and "2" in protocol["exit_codes"]
    for schema in (protocol["event_schema"], protocol["answer_schema"]):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- real events and real answers, captured from the test scripts through the proxy ---

ACTS = ["continue", "modify", "respond", "block", "exit2", "edit-response"]


@pytest.mark.parametrize("script", ["act.py", "act.sh"])
def test_real_events_and_answers_validate(
    client: httpx.Client,
    api: httpx.Client,
    tmp_path: Path,
    script: str,
    event_schema: Draft202012Validator,
    answer_schema: Draft202012Validator,
) -> None:
    set_hooks(api, "e2e", "auth", [hook("/cap/**", "/capture.py", applies_to={"groups": ["locals"]})])
    captured: list[Path] = []
    for act in ACTS:
        folder = tmp_path / act
        folder.mkdir()
        response = client.post(
            f"http://auth.test/cap/{act}?q=1",
            content=b"\xff\x00 binary" if act == "modify" else b"text body",  # body_base64 and body
            headers={"x-act": act, "x-run": script, "x-capture": str(folder), "x-user": "a", "x-User": "b"},
        )
        assert response.status_code in (200, 299, 403, 418), response.text
        captured += sorted(folder.iterdir())
    names = {(p.parent.name, p.name) for p in captured}
    assert ("edit-response", "response.event.json") in names  # the response phase was captured too
    for path in captured:
        raw = path.read_bytes()
        if path.name.endswith(".event.json"):
            event = json.loads(raw)
            errors = [e.message for e in event_schema.iter_errors(event)]
            assert not errors, (path, errors)
            assert event["phase"] == path.name.split(".")[0]
        else:
            # Empty output means "carry on", as null does.
            answer = json.loads(raw) if raw.strip() else None
            errors = [e.message for e in answer_schema.iter_errors(answer)]
            assert not errors, (path, raw, errors)
    assert len([p for p in captured if p.name.endswith(".answer.json") and p.read_bytes().strip()]) >= 4


def test_the_event_schema_refuses_what_no_event_has(event_schema: Draft202012Validator) -> None:
    """Not an always-yes schema: a missing key, an extra one and a wrong type are each refused."""
    event = {
        "version": 1, "phase": "request", "container": "c", "service": "s",
        "hook": {"id": "h", "position": 0, "script": {"path": "/x.py", "subdomain": None, "execId": None}},
        "client": {"address": "127.0.0.1", "user": None, "groups": []},
        "request": {"method": "GET", "url": "http://a/", "host": "a", "port": 80, "path": "/",
                    "headers": [["host", "a"]], "body": "", "body_base64": None, "body_truncated": False},
        "response": None,
    }  # fmt: skip
    assert event_schema.is_valid(event)
    assert not event_schema.is_valid({k: v for k, v in event.items() if k != "client"})
    assert not event_schema.is_valid({**event, "extra": 1})
    assert not event_schema.is_valid({**event, "phase": "later"})
    assert not event_schema.is_valid({**event, "request": {**event["request"], "headers": [["a"]]}})


# --- bad answers: the proxy's judge (a run through the proxy) and the schema must agree ---

BAD_ANSWERS = {
    "not an object": [1, 2],
    "unknown key": {"blok": True},
    "block not a boolean": {"block": "yes"},
    "intercept_response not a boolean": {"intercept_response": 1},
    "reason not a string": {"reason": ["x"]},
    "request not an object": {"request": "PUT"},
    "status out of range": {"response": {"status": 1000}},
    "status a string": {"response": {"status": "200"}},
    "method not listed": {"request": {"method": "BREW"}},
    "path without a slash": {"request": {"path": "no-slash"}},
    "path with a space": {"request": {"path": "/a b"}},
    "path with a final newline": {"request": {"path": "/a\n"}},
    "header name not a token": {"request": {"headers": {"set": {"bad name": "v"}}}},
    "header value with CRLF": {"request": {"headers": {"set": {"x-a": "v\r\nInjected: 1"}}}},
    "header value with a final newline": {"response": {"headers": {"x-a": "v\n"}}},
    "framing header set": {"response": {"headers": {"Content-Length": "5"}}},
    "framing header removed": {"request": {"headers": {"remove": ["Transfer-Encoding"]}}},
    "body_base64 not base64": {"request": {"body_base64": "not base64!"}},
    "body_base64 unpadded": {"request": {"body_base64": "QUJDRA"}},
    "body_base64 with a newline": {"response": {"body_base64": "QUJD\n"}},
    "body a number": {"response": {"body": 5}},
}
GOOD_ANSWERS = {
    "null": None,
    "empty": {},
    "header with non-ASCII": {"request": {"headers": {"set": {"x-ok": "v é"}, "remove": ["x-gone"]}}},
    "JSON body": {"response": {"status": 201, "body": {"a": [1, None]}}},
    "base64 body": {"request": {"body_base64": "QUJD"}},
    "all keys": {"block": False, "reason": None, "intercept_response": False, "request": None},
}


@pytest.mark.parametrize(
    ("answer", "good"),
    [pytest.param(a, False, id=name) for name, a in BAD_ANSWERS.items()]
    + [pytest.param(a, True, id=name) for name, a in GOOD_ANSWERS.items()],
)
def test_judge_and_schema_agree_through_the_proxy(
    client: httpx.Client, api: httpx.Client, answer_schema: Draft202012Validator, answer: Any, good: bool
) -> None:
    [hook_id] = [h["id"] for h in set_hooks(api, "e2e", "auth", [hook("/say", "/say.py")])["hooks"]]
    response = client.post("http://auth.test/say", content=json.dumps(answer).encode())
    [run] = wait_for(lambda: events(api, hookId=hook_id), 10, "the run")
    judged_good = run["outcome"] != "failed"
    assert judged_good == good, run
    assert answer_schema.is_valid(answer) == good
    if not good:
        assert response.status_code == 502 and run["error"].startswith("bad script output"), run


@settings(max_examples=500, deadline=None)
@given(answer=answers | st.lists(st.integers(), max_size=2) | st.none())
def test_judge_and_schema_agree_on_any_answer(answer: Any) -> None:
    """The judge's parse (every rule that does not depend on the exchange) against the schema.
    200.0 for a status is the one rule JSON Schema cannot say (`rules` lists it)."""
    status = (answer.get("response") or {}).get("status") if isinstance(answer, dict) else None
    if isinstance(answer, dict) and isinstance(answer.get("response"), dict):
        assume(not (isinstance(status, float) and math.isfinite(status) and status.is_integer()))
    try:
        parse_answer(json.dumps(answer).encode())
        judged = True
    except BadAnswer:
        judged = False
    assert VALIDATOR.is_valid(answer) == judged, answer


# --- the catalog's filters ---


def test_catalog_filters(api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [
        hook("/a", "/act.py"),
        hook("/b", "/act.sh", enabled=False, mode="async"),
        hook("/c", "/act.py", failure_mode="open"),
        hook("/d", "/act.sh", mode="async", failure_mode="open"),
    ])  # fmt: skip
    set_hooks(api, "e2e", "billing", [hook("/e", "/act.py", enabled=False)])
    whole = api.get(CATALOG).json()["data"]["services"]
    entries = [(service, e) for service, listed in whole.items() for e in listed]

    def expect(params: dict[str, str], keep: Any) -> None:
        response = api.get(CATALOG, params=params)
        assert response.status_code == 200, response.text
        got = response.json()["data"]["services"]
        wanted: dict[str, list[tuple[str | None, int]]] = {}
        for service, entry in entries:
            if keep(service, entry):
                wanted.setdefault(service, []).append((entry["id"], entry["position"]))
        assert {
            s: [(e["id"], e["position"]) for e in listed] for s, listed in got.items() if listed
        } == wanted

    expect({"service": "billing"}, lambda s, e: s == "billing")
    expect({"mode": "async"}, lambda s, e: e["mode"] == "async")
    expect({"runtime": "bash"}, lambda s, e: e["runtime"] == "bash")
    expect({"enabled": "false"}, lambda s, e: not e["enabled"])
    expect(
        {"enabled": "TRUE", "failure_mode": "open"}, lambda s, e: e["enabled"] and e["failure_mode"] == "open"
    )
    expect(
        {"service": "auth", "runtime": "python", "failure_mode": "closed"},
        lambda s, e: s == "auth" and e["runtime"] == "python" and e["failure_mode"] == "closed",
    )
    # positions are the hooks' own, not the filtered list's
    assert [
        e["position"] for e in api.get(CATALOG, params={"mode": "async"}).json()["data"]["services"]["auth"]
    ] == [1, 3]
    assert list(api.get(CATALOG, params={"service": "auth"}).json()["data"]["services"]) == ["auth"]


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"mode": "later"}, "mode", "'sync' or 'async'"),
        ({"runtime": "ruby"}, "runtime", "'python', 'node', 'typescript', 'bash', 'exec' or 'remote'"),
        ({"enabled": "maybe"}, "enabled", "must be true or false, got 'maybe'"),
        ({"failure_mode": "closed-ish"}, "failure_mode", "'closed' or 'open'"),
        ({"service": "nope"}, "service", "'nope' is not defined in container 'e2e' (defined: auth, billing)"),
        ({"colour": "red"}, "colour", "unknown parameter"),
    ],
)  # fmt: skip
def test_bad_catalog_filters_are_422(
    api: httpx.Client, params: dict[str, str], field: str, reason: str
) -> None:
    response = api.get(CATALOG, params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["message"]) == ("VALIDATION_ERROR", "Invalid query")
    [detail] = [d for d in body["details"] if d["field"] == field]
    assert reason in detail["reason"], detail
    assert "ETag" in response.headers
