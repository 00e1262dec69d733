"""Dry-run a hook over the API: the script runs as live traffic would run it; the hooks file
and the live stats stay as they were; the run is recorded as a dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ApiProcess, demo, write_container
from tests.harness import hook, set_hooks, wait_for
from tests.proxy_fixtures import api, client, home, proxy, upstream  # noqa: F401 - fixtures

STATS = "/api/v1/containers/e2e/proxy/stats"


def url(hook_id: str) -> str:
    return f"/api/v1/containers/e2e/proxy/hooks/auth/{hook_id}/test"


def setup_hook(api: httpx.Client, **extra: Any) -> str:
    return str(set_hooks(api, "e2e", "auth", [hook("/t/**", "/act.py", **extra)])["hooks"][0]["id"])


def dry_run_count(api: httpx.Client) -> int:
    params = {"kind": "dry_run", "limit": 500}
    return len(api.get("/api/v1/containers/e2e/proxy/events", params=params).json()["data"]["events"])


def dry(api: httpx.Client, home: Path, hook_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run a dry run; check nothing else moved; return its data."""
    before_file = (home / "e2e.json").read_bytes()
    before_stats = api.get(STATS, params={"period": "24h"}).json()["data"]["totalEvents"]
    dry_runs = len(
        api.get("/api/v1/containers/e2e/proxy/events", params={"kind": "dry_run", "limit": 500}).json()[
            "data"
        ]["events"]
    )
    response = api.post(url(hook_id), json=body)
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Hook tested"
    assert (home / "e2e.json").read_bytes() == before_file
    wait_for(lambda: dry_run_count(api) == dry_runs + 1, 10, "the dry-run event")
    assert api.get(STATS, params={"period": "24h"}).json()["data"]["totalEvents"] == before_stats
    return dict(response.json()["data"])


@pytest.mark.parametrize("script", ["/act.py", "/act.js", "/act.sh"])
def test_each_answer_kind(api: httpx.Client, home: Path, script: str) -> None:
    hook_id = str(set_hooks(api, "e2e", "auth", [hook("/t/**", script)])["hooks"][0]["id"])
    lang = {"/act.py": "python", "/act.js": "node", "/act.sh": "bash"}[script]

    data = dry(api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "continue"}})
    assert data["outcome"] == "continued" and data["success"] and data["would_contact_upstream"]
    assert data["exit_code"] == 0 and "trace from" in data["stderr"] and data["runtime"] == lang

    data = dry(api, home, hook_id, {"method": "POST", "path": "/t/x", "body": "b",
                                    "headers": {"x-act": "modify", "x-secret": "s"}})  # fmt: skip
    assert data["outcome"] == "modified" and data["would_contact_upstream"]
    assert data["request"]["method"] == "PUT" and data["request"]["url"].endswith(f"/rewritten?lang={lang}")
    assert ["x-added", lang] in data["request"]["headers"] and data["request"]["body"] == f"body from {lang}"
    assert not any(name == "x-secret" for name, _ in data["request"]["headers"])

    data = dry(api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "respond"}})
    assert data["outcome"] == "responded" and not data["would_contact_upstream"]
    assert data["response"]["status"] == 418 and data["response"]["body"] == f"teapot from {lang}"

    data = dry(api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "block"}})
    assert data["outcome"] == "blocked" and data["blocked"] and data["reason"] == f"blocked by {lang}"
    assert data["response"]["status"] == 403

    data = dry(api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "edit-response"}})
    assert data["intercept_response"] is True and data["outcome"] == "continued"
    data = dry(api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "edit-response"},
                                    "response": {"status": 200, "body": "orig"}})  # fmt: skip
    assert data["phase"] == "response" and data["outcome"] == "modified"
    assert data["response"]["status"] == 299 and data["response"]["body"].startswith(f"edited by {lang}")


def test_timeout_and_crash_follow_the_failure_mode(api: httpx.Client, home: Path, tmp_path: Path) -> None:
    hook_id = setup_hook(api, timeout=300)
    data = dry(
        api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "hang", "x-pidfile": str(tmp_path / "p")}}
    )
    assert data["outcome"] == "timeout" and not data["success"]
    assert data["response"]["status"] == 504 and "timed out after 300 ms" in data["error"]
    hook_id = setup_hook(api, failure_mode="open")
    data = dry(api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "crash"}})
    assert data["outcome"] == "failed" and data["exit_code"] == 3 and data["response"] is None
    assert data["would_contact_upstream"] and "script exited with code 3" in data["error"]


def test_script_override(api: httpx.Client, home: Path) -> None:
    hook_id = setup_hook(api)
    data = dry(
        api, home, hook_id, {"path": "/t/x", "headers": {"x-act": "respond"}, "script_override": "/act.js"}
    )
    assert (
        data["response"]["headers"] == [["x-mock", "node"], ["content-length", "15"]]
        or ["x-mock", "node"] in data["response"]["headers"]
    )
    assert data["script"] == "/act.js" and data["runtime"] == "node"
    bad = api.post(url(hook_id), json={"script_override": "/../etc/passwd"})
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "script_override"


def test_inline_scripts_are_off_by_default(api: httpx.Client) -> None:
    hook_id = setup_hook(api)
    body = {"script_inline": {"language": "python", "source": "print('{}')"}}
    response = api.post(url(hook_id), json=body)
    assert response.status_code == 403 and response.json()["code"] == "INLINE_SCRIPTS_DISABLED"
    assert api.post(url("01hz8x9k2b3c4d5e6f7g8h9j0m"), json={}).status_code == 404
    assert api.post(url(hook_id), json={"method": "FETCH"}).status_code == 422


def test_inline_script_when_the_operator_allows_it(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json", demo(
        hooks={"auth": [{"id": "01hz8x9k2b3c4d5e6f7g8h9j0k", "match": {"method": "*", "path": "/**"},
                         "script": {"path": "/hooks/x.py"}}]}))  # fmt: skip
    process = ApiProcess(path, "--allow-inline-scripts")
    try:
        with process.client() as http:
            source = (
                "import json, sys\nevent = json.load(sys.stdin)\n"
                "print(json.dumps({'block': True, 'reason': event['request']['path']}))\n"
            )
            test_url = "/api/v1/containers/demo/proxy/hooks/auth/01hz8x9k2b3c4d5e6f7g8h9j0k/test"
            body = {"path": "/inline", "script_inline": {"language": "python", "source": source}}
            response = http.post(test_url, json=body)
            assert response.status_code == 200, response.text
            assert response.json()["data"]["reason"] == "/inline"
            events = http.get("/api/v1/containers/demo/proxy/events", params={"kind": "dry_run"}).json()[
                "data"
            ]["events"]
            assert len(events) == 1 and events[0]["outcome"] == "blocked"
    finally:
        process.stop()


def test_a_dry_run_reads_the_path_as_the_proxy_does(api: httpx.Client, home: Path) -> None:
    hook_id = setup_hook(api)
    data = dry(api, home, hook_id, {"path": "/t//x/../%79?q=%2F", "headers": {"x-act": "echo"}})
    assert data["path"] == {"as_sent": "/t//x/../%79?q=%2F", "canonical": "/t/y", "forwarded": "/t/y?q=%2F"}
    assert data["response"]["status"] == 200  # act.py's echo: the event it was given
    assert json.loads(data["response"]["body"])["request"]["path"] == "/t/y?q=%2F"
    refused = api.post(url(hook_id), json={"path": "/t/%2e%2e/%2e%2e/etc"})
    assert refused.status_code == 422
    [detail] = refused.json()["details"]
    assert detail["field"] == "path" and detail["reason"].startswith(
        "the proxy would refuse this path with 400"
    )
