"""The version of the hook that ran, in each run's event, through a real mitmdump: an edit raises
it for the next run, a move does not; the hook's name travels with it."""

from __future__ import annotations

import httpx

from tests.harness import Mitmdump, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, client, home, proxy, upstream  # noqa: F401 - fixtures
from tests.test_events_e2e import events

HOOKS = "/api/v1/containers/e2e/proxy/hooks/auth"


def runs_of(api: httpx.Client, hook_id: str, count: int) -> list[dict[str, object]]:
    found = wait_for(lambda: (e := events(api, hookId=hook_id)) and len(e) >= count and e, 10, "the runs")
    return list(found)


def test_events_record_the_hook_version_that_ran(client: httpx.Client, api: httpx.Client) -> None:
    placed = set_hooks(
        api, "e2e", "auth", [hook("/v/**", "/act.py", name="versioned"), hook("/w", "/act.py")]
    )
    hook_id = placed["hooks"][0]["id"]
    assert client.get("http://auth.test/v/1").status_code == 200
    [first] = runs_of(api, hook_id, 1)
    assert (first["hook_name"], first["hook_version"]) == ("versioned", 1)

    etag = {"If-Match": api.get(HOOKS).headers["ETag"]}
    edited = api.patch(
        f"{HOOKS}/versioned", json=hook("/v/**", "/act.py", name="versioned", timeout=4000), headers=etag
    )
    assert edited.status_code == 200, edited.text
    assert client.get("http://auth.test/v/2").status_code == 200
    assert runs_of(api, hook_id, 2)[0]["hook_version"] == 2  # newest first

    etag = {"If-Match": api.get(HOOKS).headers["ETag"]}
    assert api.patch(f"{HOOKS}/versioned/position", json={"position": 1}, headers=etag).status_code == 200
    assert client.get("http://auth.test/v/3").status_code == 200
    latest = runs_of(api, hook_id, 3)[0]
    assert (latest["hook_version"], latest["position"]) == (2, 1)  # moved, not edited


def test_the_name_shows_in_explain_and_in_the_proxys_log(
    proxy: Mitmdump, client: httpx.Client, api: httpx.Client
) -> None:
    """Issue 14 item 3: a hook's name is shown in explain and logs, beside listings, catalog and
    events (tests/test_hook_names.py, the test above)."""
    placed = set_hooks(api, "e2e", "auth", [hook("/named/**", "/act.py", name="named-guard")])
    hook_id = placed["hooks"][0]["id"]
    explained = api.post("/api/v1/containers/e2e/proxy/match", json={"host": "auth.test", "path": "/named/x"})
    assert explained.status_code == 200, explained.text
    [shown] = explained.json()["data"]["hooks"]
    assert (shown["id"], shown["name"], shown["version"]) == (hook_id, "named-guard", 1)
    # A block is logged (runs that went as planned are logged at debug level only).
    assert client.get("http://auth.test/named/x", headers={"x-act": "block"}).status_code == 403
    line = f"hook {hook_id} 'named-guard' v1 (e2e/auth #0, request)"
    wait_for(lambda: line in proxy.output(), 10, "the run's log line")
