"""What each run changed (`changes` on a run's event), for each kind of answer, through a real
mitmdump: checked against what the upstream and the client really got, never a header value or
a query string in the record; and run history filtered on `changed`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Upstream, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, client, home, proxy, upstream  # noqa: F401 - fixtures
from tests.test_events_e2e import events

SECRET = "s3cret-value"


def only_run(api: httpx.Client, hook_id: str, count: int = 1) -> list[dict[str, Any]]:
    found = wait_for(lambda: (e := events(api, hookId=hook_id)) and len(e) >= count and e, 10, "the runs")
    assert len(found) == count, found
    return list(found)


def hooked(api: httpx.Client, script: str, **extra: Any) -> str:
    return str(set_hooks(api, "e2e", "auth", [hook("/ch/**", script, **extra)])["hooks"][0]["id"])


@pytest.mark.parametrize("script", ["/act.py", "/act.sh"])
def test_a_changed_request(client: httpx.Client, api: httpx.Client, upstream: Upstream, script: str) -> None:
    hook_id = hooked(api, script)
    sent = b"the client's own body"
    response = client.post(
        f"http://auth.test/ch/modify?token={SECRET}",
        content=sent,
        headers={"x-act": "modify", "x-secret": SECRET},
    )
    assert response.status_code == 200
    lang = "python" if script.endswith(".py") else "bash"
    [arrived] = upstream.seen(f"lang={lang}")[-1:]  # what the upstream got, independently of the record
    assert (arrived["method"], arrived["path"]) == ("PUT", f"/rewritten?lang={lang}")
    assert arrived["headers"]["x-added"] == lang and "x-secret" not in arrived["headers"]
    [run] = only_run(api, hook_id)
    assert run["outcome"] == "modified"
    assert run["changes"] == {
        "request": {
            "method": {"before": "POST", "after": "PUT"},
            "path": {"before": "/ch/modify", "after": "/rewritten"},
            "query_changed": True,
            "headers_set": ["x-added"],
            "headers_removed": ["x-secret"],
            "body": {"before": len(sent), "after": len(arrived["body"].encode())},
        },
        "response": None,
    }
    assert SECRET not in json.dumps(run)  # neither the header's value nor the query's


def test_an_answered_request(client: httpx.Client, api: httpx.Client) -> None:
    hook_id = hooked(api, "/act.py")
    response = client.get("http://auth.test/ch/respond", headers={"x-act": "respond"})
    assert response.status_code == 418
    [run] = only_run(api, hook_id)
    assert run["outcome"] == "responded"
    assert run["changes"] == {
        "request": None,
        "response": {
            "synthesized": True,
            "status": {"before": None, "after": 418},
            "headers_set": ["x-mock"],
            "body": {"before": None, "after": len(response.content)},
        },
    }


def test_an_edited_response(client: httpx.Client, api: httpx.Client) -> None:
    hook_id = hooked(api, "/act.py")
    response = client.get("http://auth.test/ch/edit", headers={"x-act": "edit-response"})
    assert response.status_code == 299 and response.headers["x-edited"] == "python"
    prefix = b"edited by python: "
    assert response.content.startswith(prefix)
    upstream_size = len(response.content) - len(prefix)  # the hook wraps the upstream's body
    answered, asked = only_run(api, hook_id, 2)  # newest first
    assert (asked["phase"], asked["outcome"], asked["changes"]) == ("request", "continued", None)
    assert (answered["phase"], answered["outcome"]) == ("response", "modified")
    assert answered["changes"] == {
        "request": None,
        "response": {
            "synthesized": False,
            "status": {"before": 200, "after": 299},
            "headers_set": ["x-edited"],
            "body": {"before": upstream_size, "after": len(response.content)},
        },
    }


@pytest.mark.parametrize(
    ("act", "extra", "outcome", "status"),
    [
        ("continue", {}, "continued", 200),
        ("block", {}, "blocked", 403),
        ("exit2", {}, "blocked", 403),
        ("crash", {}, "failed", 502),
        ("hang", {"timeout": 300}, "timeout", 504),
        ("garbage", {"failure_mode": "open"}, "failed", 200),
        ("modify", {"mode": "async"}, "observed", 200),  # an async hook's answer is never applied
    ],
)
def test_answers_that_change_nothing_have_no_changes(
    client: httpx.Client,
    api: httpx.Client,
    upstream: Upstream,
    act: str,
    extra: dict[str, Any],
    outcome: str,
    status: int,
    tmp_path: Path,
) -> None:
    hook_id = hooked(api, "/act.py", **extra)
    headers = {"x-act": act, "x-pidfile": str(tmp_path / "hang.pid")}  # where `hang` says its pid
    response = client.get(f"http://auth.test/ch/none-{act}", headers=headers)
    assert response.status_code == status, response.text
    [run] = only_run(api, hook_id)
    assert (run["outcome"], run["changes"]) == (outcome, None)
    if status == 200:
        assert upstream.seen(f"/ch/none-{act}")[-1]["method"] == "GET"  # reached as sent


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"request": {"headers": {"remove": ["x-absent"]}}}, "modified"),  # nothing to remove
        ({"request": {"method": "POST", "path": "/ch/say"}}, "modified"),  # what it was already
        ({"request": {}}, "modified"),
        ({"intercept_response": False}, "continued"),
        # refused when applied (a 1xx is never a whole answer), open: the request goes on as sent
        ({"response": {"status": 150}}, "failed"),
    ],
)
def test_no_op_and_refused_edits_have_no_changes(
    client: httpx.Client, api: httpx.Client, answer: dict[str, Any], outcome: str
) -> None:
    hook_id = hooked(api, "/say.py", failure_mode="open")
    response = client.post("http://auth.test/ch/say", content=json.dumps(answer).encode())
    assert response.status_code == 200
    [run] = only_run(api, hook_id)
    assert (run["outcome"], run["changes"]) == (outcome, None)


def test_a_same_size_body_is_still_a_replaced_body(client: httpx.Client, api: httpx.Client) -> None:
    hook_id = hooked(api, "/act.py")
    sent = b"sixteen bytes!!!"
    assert len(sent) == len(b"body from python")  # what act.py puts in its place
    assert (
        client.post("http://auth.test/ch/same", content=sent, headers={"x-act": "modify"}).status_code == 200
    )
    [run] = only_run(api, hook_id)
    assert run["changes"]["request"]["body"] == {"before": 16, "after": 16}


def test_a_header_removed_and_set_again_is_set(client: httpx.Client, api: httpx.Client) -> None:
    hook_id = hooked(api, "/say.py")
    answer = {"request": {"headers": {"set": {"X-One": "1"}, "remove": ["x-one", "x-two"]}}}
    headers = {"x-one": "0", "x-two": "0"}
    assert (
        client.post("http://auth.test/ch/hdr", content=json.dumps(answer), headers=headers).status_code == 200
    )
    [run] = only_run(api, hook_id)
    assert run["changes"]["request"]["headers_set"] == ["X-One"]
    assert run["changes"]["request"]["headers_removed"] == ["x-two"]


def test_run_history_and_events_filter_on_changed(client: httpx.Client, api: httpx.Client) -> None:
    hook_id = hooked(api, "/act.py")
    for act in ("modify", "continue", "respond", "block", "continue", "modify"):
        client.get("http://auth.test/ch/filter", headers={"x-act": act})
    everything = only_run(api, hook_id, 6)
    url = f"/api/v1/containers/e2e/proxy/hooks/auth/{hook_id}/runs"

    def ids(response: httpx.Response, key: str) -> list[str]:
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"][key]]

    changed = [e["id"] for e in everything if e["changes"] is not None]
    unchanged = [e["id"] for e in everything if e["changes"] is None]
    assert len(changed) == 3 and len(unchanged) == 3
    assert ids(api.get(url, params={"changed": "true"}), "runs") == changed
    assert ids(api.get(url, params={"changed": "false"}), "runs") == unchanged
    assert ids(api.get(url, params={"changed": "true", "outcome": "responded"}), "runs") == changed[1:2]
    events_url = "/api/v1/containers/e2e/proxy/events"
    assert ids(api.get(events_url, params={"hookId": hook_id, "changed": "1"}), "events") == changed
    for where in (url, events_url):
        bad = api.get(where, params={"changed": "maybe"})
        assert bad.status_code == 422
        assert {"field": "changed", "reason": "must be true or false, got 'maybe'"} in bad.json()["details"]


def test_a_dry_run_records_the_changes_it_would_make(api: httpx.Client) -> None:
    hook_id = hooked(api, "/act.py")
    url = f"/api/v1/containers/e2e/proxy/hooks/auth/{hook_id}/test"
    response = api.post(url, json={"method": "GET", "path": "/ch/dry", "headers": {"x-act": "respond"}})
    assert response.status_code == 200, response.text
    [dry] = wait_for(lambda: events(api, hookId=hook_id, kind="dry_run"), 10, "the dry run")
    assert dry["changes"]["response"]["synthesized"] is True
    assert dry["changes"]["response"]["status"] == {"before": None, "after": 418}
