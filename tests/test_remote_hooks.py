"""Remote hooks (issue 13, item 1), through a real mitmdump in front of a real upstream, served
by a plain aiohttp hook service: every answer kind, a non-2xx, a bad body, a timeout in both
failure modes, a refused connection, 20 concurrent flows while the service hangs one, execId as
a header, no local file needed; catalog, explain and dry runs show the URL."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from addon.remote_hooks import EXEC_ID_HEADER
from tests.harness import Mitmdump, Upstream, container_doc, free_port, set_hooks, wait_for, write_json
from tests.proxy_fixtures import api, proxy, upstream  # noqa: F401 - fixtures (with this module's home)

SCRIPTS = Path(__file__).parent / "scripts"
HOOKS = "/api/v1/containers/e2e/proxy/hooks"
EVENTS = "/api/v1/containers/e2e/proxy/events"


class HookService:
    """A hook service: an aiohttp app in its own thread; answers as the event's x-act says."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.exec_ids: list[str | None] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.release = asyncio.Event()
        self.hanging = 0
        self.port: int = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hooks/act", self._act)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    async def _act(self, request: web.Request) -> web.StreamResponse:
        event = await request.json()
        self.events.append(event)
        self.exec_ids.append(request.headers.get(EXEC_ID_HEADER))
        headers = {name.lower(): value for name, value in event["request"]["headers"]}
        act = headers.get("x-act", "continue")
        if act == "continue":
            return web.Response(status=200)
        if act == "modify":
            return web.json_response({"request": {"headers": {"set": {"x-added": "remote"}}}})
        if act == "respond":
            return web.json_response({"response": {"status": 418, "body": "from the hook service"}})
        if act == "block":
            return web.json_response({"block": True, "reason": "blocked remotely"})
        if act == "status":
            return web.Response(status=503, text="service is down for maintenance")
        if act == "bad":
            return web.Response(status=200, text="this is not json")
        if act == "hang":
            self.hanging += 1
            await self.release.wait()
            return web.Response(status=200)
        raise AssertionError(act)

    def unhang(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)

    def stop(self) -> None:
        self.unhang()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def service() -> Iterator[HookService]:
    server = HookService()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, service: HookService) -> Path:
    folder = tmp_path_factory.mktemp("remote")
    (folder / "scripts").mkdir()  # empty: a remote hook needs no local file
    doc = container_doc(upstream)
    doc["services"]["hooksvc"] = {"hosts": ["hooks.internal"], "upstream": service.url}
    doc["services"]["deadsvc"] = {"hosts": ["dead.internal"], "upstream": f"http://127.0.0.1:{free_port()}"}
    write_json(folder / "e2e.json", doc)
    return folder


def remote_hook(
    api: httpx.Client, subdomain: str = "hooksvc", exec_id: str | None = None, **extra: Any
) -> str:
    script: dict[str, Any] = {"subdomain": subdomain, "path": "/hooks/act"}
    if exec_id is not None:
        script["execId"] = exec_id
    spec = {"match": {"method": "*", "path": "/r/**"}, "script": script, **extra}
    return str(set_hooks(api, "e2e", "auth", [spec])["hooks"][0]["id"])


def get(proxy: Mitmdump, act: str, path: str = "/r/x") -> httpx.Response:
    with proxy.client() as http:
        return http.get(f"http://auth.test{path}", headers={"x-act": act, "x-marker": uuid.uuid4().hex})


def last_event(api: httpx.Client, hook_id: str, count: int = 1) -> dict[str, Any]:
    """The newest event of the hook, once it has `count`."""

    def found() -> dict[str, Any] | None:
        events = api.get(EVENTS, params={"hookId": hook_id}).json()["data"]["events"]
        return events[0] if len(events) >= count else None

    return dict(wait_for(found, 10, f"{count} events"))


def test_every_answer_kind(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream, service: HookService
) -> None:
    hook_id = remote_hook(api, exec_id="tenant-7")
    assert get(proxy, "continue").json()["upstream"] is True
    marker = uuid.uuid4().hex
    with proxy.client() as http:
        modified = http.get("http://auth.test/r/m", headers={"x-act": "modify", "x-marker": marker})
    assert modified.status_code == 200 and upstream.seen(marker)[0]["headers"]["x-added"] == "remote"
    responded = get(proxy, "respond")
    assert (responded.status_code, responded.text) == (418, "from the hook service")
    blocked = get(proxy, "block")
    assert blocked.status_code == 403 and blocked.json()["reason"] == "blocked remotely"
    event = last_event(api, hook_id, count=4)
    assert (event["outcome"], event["runtime"], event["script"]) == ("blocked", "remote", "/hooks/act")
    # Protocol v1's event, as a local script reads it; execId as a header.
    sent = service.events[-1]
    assert sent["version"] == 1 and sent["phase"] == "request" and sent["service"] == "auth"
    assert sent["hook"]["script"] == {"path": "/hooks/act", "subdomain": "hooksvc", "execId": "tenant-7"}
    assert service.exec_ids[-1] == "tenant-7"


@pytest.mark.parametrize(
    ("act", "error"),
    [
        ("status", "/hooks/act answered 503: service is down for maintenance"),
        ("bad", "bad answer from the hook service"),
    ],
)
def test_a_non_2xx_or_a_bad_body_is_a_failed_run(
    proxy: Mitmdump, api: httpx.Client, act: str, error: str
) -> None:
    hook_id = remote_hook(api)
    response = get(proxy, act)
    assert response.status_code == 502 and error in response.text
    event = last_event(api, hook_id)
    assert event["outcome"] == "failed" and error in event["error"]


def test_a_refused_connection_is_a_failed_run(proxy: Mitmdump, api: httpx.Client) -> None:
    hook_id = remote_hook(api, subdomain="deadsvc")
    response = get(proxy, "continue")
    assert response.status_code == 502 and "unreachable" in response.text
    assert "unreachable" in last_event(api, hook_id)["error"]
    remote_hook(api, subdomain="deadsvc", failure_mode="open")
    assert get(proxy, "continue").json()["upstream"] is True


@pytest.mark.parametrize(("failure_mode", "status"), [("closed", 504), ("open", 200)])
def test_a_timeout_in_each_failure_mode(
    proxy: Mitmdump, api: httpx.Client, failure_mode: str, status: int
) -> None:
    hook_id = remote_hook(api, timeout=300, failure_mode=failure_mode)
    response = get(proxy, "hang")
    assert response.status_code == status
    event = last_event(api, hook_id)
    assert event["outcome"] == "timeout" and event["error"] == "hook service timed out after 300 ms"


def test_a_hung_flow_does_not_stall_20_others(
    proxy: Mitmdump, api: httpx.Client, service: HookService
) -> None:
    remote_hook(api, timeout=30_000)
    before = service.hanging
    with ThreadPoolExecutor(21) as pool:
        hung = pool.submit(get, proxy, "hang")
        wait_for(lambda: service.hanging == before + 1, 10, "the service to hold one flow")
        others = [pool.submit(get, proxy, "continue", f"/r/{n}") for n in range(20)]
        assert [f.result(timeout=30).status_code for f in others] == [200] * 20
        assert not hung.done()  # still held by the service, while the 20 went through
        service.unhang()
        assert hung.result(timeout=30).status_code == 200


def test_catalog_explain_and_dry_run_show_the_url(api: httpx.Client, service: HookService) -> None:
    hook_id = remote_hook(api)
    url = f"{service.url}/hooks/act"
    (entry,) = api.get("/api/v1/containers/e2e/proxy/catalog").json()["data"]["services"]["auth"]
    assert (entry["remote_url"], entry["runtime"], entry["exists"], entry["problem"]) == (
        url,
        "remote",
        True,
        None,
    )
    explained = api.post("/api/v1/containers/e2e/proxy/match", json={"host": "auth.test", "path": "/r/x"})
    assert explained.json()["data"]["winner"] == {"id": hook_id, "position": 0, "remote_url": url}
    dry = api.post(f"{HOOKS}/auth/{hook_id}/test", json={"path": "/r/x", "headers": {"x-act": "block"}})
    data = dry.json()["data"]
    assert (data["outcome"], data["remote_url"], data["runtime"]) == ("blocked", url, "remote")
    health = api.get("/healthz").json()["data"]
    assert health["status"] == "ok", health["reasons"]


def test_a_local_hook_still_needs_its_file(api: httpx.Client) -> None:
    """A subdomain that names no service with an upstream: a local script, checked as today."""
    url = f"{HOOKS}/auth"
    etag = api.get(url).headers["ETag"]
    spec = {
        "match": {"method": "*", "path": "/r/**"},
        "script": {"subdomain": "nosuch", "path": "/hooks/act"},
    }
    response = api.post(url, json=spec, headers={"If-Match": etag})
    assert response.status_code == 422 and "script.path" in response.text
