"""The version of the hook that ran, in each run's event, through a real mitmdump: an edit raises
it for the next run, a move does not; the hook's name travels with it."""

from __future__ import annotations

import httpx

from tests.harness import hook, set_hooks, wait_for
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
