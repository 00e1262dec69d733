"""End to end: a real mitmdump running the addon, in front of a real aiohttp upstream, with a
real HTTP client sending through it. Hooks are set through the control API the addon serves,
so every test also shows that an API write is live for the next flow."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Mitmdump, Upstream, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, client, home, proxy, upstream  # noqa: F401 - fixtures

LANGS = {"py": "python", "js": "node", "sh": "bash"}


def marker() -> str:
    return uuid.uuid4().hex[:12]


def send(
    client: httpx.Client, url: str, act: str | None = None, method: str = "GET", **kwargs: Any
) -> tuple[httpx.Response, str]:
    mark = marker()
    headers = {"x-marker": mark, **kwargs.pop("headers", {})}
    if act:
        headers["x-act"] = act
    return client.request(method, url, headers=headers, **kwargs), mark


def ids(data: dict[str, Any]) -> list[str]:
    return [h["id"] for h in data["hooks"]]


# --- which service, which hook ---


def test_flow_for_no_service_passes_untouched(
    client: httpx.Client, api: httpx.Client, upstream: Upstream
) -> None:
    set_hooks(api, "e2e", "auth", [hook("/**", "/act.py")])
    response, mark = send(
        client, f"http://localhost:{upstream.port}/free", "block", headers={"x-secret": "s"}
    )
    assert response.status_code == 200 and response.json()["upstream"] is True
    assert "x-proxy-hooks-hook" not in response.headers
    [seen] = upstream.seen(mark)
    assert seen["headers"]["x-secret"] == "s" and seen["path"] == "/free"


def test_service_without_a_matching_hook_is_routed_to_its_upstream(
    client: httpx.Client, upstream: Upstream
) -> None:
    response, mark = send(client, "http://api.billing.test/v1/invoices?x=1")
    assert response.status_code == 200 and response.json()["path"] == "/v1/invoices?x=1"
    assert upstream.seen(mark)[0]["headers"]["host"] == "api.billing.test"  # the Host asked for is kept
    assert "x-proxy-hooks-hook" not in response.headers


def test_first_match_wins_and_globs(client: httpx.Client, api: httpx.Client) -> None:
    data = set_hooks(api, "e2e", "auth", [hook("/fw/*", "/act.py"), hook("/fw/**", "/act.js")])
    first, second = ids(data)
    response, _ = send(client, "http://auth.test/fw/one", "respond")
    assert response.status_code == 418 and response.headers["x-mock"] == "python"
    assert response.headers["x-proxy-hooks-hook"] == first
    # `*` stays inside one segment, so only `**` matches a deeper path.
    response, _ = send(client, "http://auth.test/fw/one/two", "respond")
    assert response.headers["x-mock"] == "node" and response.headers["x-proxy-hooks-hook"] == second
    # Reorder through the API: the other hook now comes first, for the very next flow.
    etag = api.get("/api/v1/containers/e2e/proxy/hooks/auth").headers["ETag"]
    moved = api.patch(
        f"/api/v1/containers/e2e/proxy/hooks/auth/{second}/position",
        json={"position": 0},
        headers={"If-Match": etag},
    )
    assert moved.status_code == 200
    response, _ = send(client, "http://auth.test/fw/one", "respond")
    assert response.headers["x-mock"] == "node"


def test_query_is_not_part_of_the_path_match(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [hook("/exact", "/act.py")])
    response, _ = send(client, "http://auth.test/exact?a=1", "respond")
    assert response.status_code == 418
    response, _ = send(client, "http://auth.test/exact/more", "respond")
    assert response.status_code == 200


def test_method_list_and_star(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [hook("/m", "/act.py", method=["POST", "put"]), hook("/any", "/act.py")])
    assert send(client, "http://auth.test/m", "respond", method="POST")[0].status_code == 418
    assert send(client, "http://auth.test/m", "respond", method="PUT")[0].status_code == 418
    assert send(client, "http://auth.test/m", "respond", method="GET")[0].status_code == 200
    for method in ("GET", "DELETE", "PATCH", "OPTIONS"):
        assert send(client, "http://auth.test/any", "respond", method=method)[0].status_code == 418


def test_header_match(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [
        hook("/h", "/act.py", match={"headers": {"X-Tenant": "acme"}}),
        hook("/present", "/act.py", match={"headers": {"x-tenant": "*"}}),
    ])  # fmt: skip
    assert send(client, "http://auth.test/h", "respond", headers={"x-tenant": "acme"})[0].status_code == 418
    assert send(client, "http://auth.test/h", "respond", headers={"x-tenant": "other"})[0].status_code == 200
    assert send(client, "http://auth.test/h", "respond")[0].status_code == 200
    assert (
        send(client, "http://auth.test/present", "respond", headers={"x-tenant": "x"})[0].status_code == 418
    )
    assert send(client, "http://auth.test/present", "respond")[0].status_code == 200


def test_group_scoping(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [
        hook("/g/admin", "/act.py", applies_to={"groups": ["admins"]}),
        hook("/g/local", "/act.py", applies_to={"groups": ["locals"]}),
        hook("/g/remote", "/act.py", applies_to={"groups": ["remote"]}),
        hook("/g/either", "/act.py", applies_to={"groups": ["remote", "admins"]}),
    ])  # fmt: skip
    admin = {"x-role": "admin"}
    assert send(client, "http://auth.test/g/admin", "respond", headers=admin)[0].status_code == 418
    assert send(client, "http://auth.test/g/admin", "respond")[0].status_code == 200
    assert send(client, "http://auth.test/g/local", "respond")[0].status_code == 418  # 127.0.0.0/8
    assert send(client, "http://auth.test/g/remote", "respond", headers=admin)[0].status_code == 200
    assert send(client, "http://auth.test/g/either", "respond", headers=admin)[0].status_code == 418


def test_disabled_hooks_are_skipped(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [hook("/d", "/act.py", enabled=False), hook("/d", "/act.js")])
    assert send(client, "http://auth.test/d", "respond")[0].headers["x-mock"] == "node"


# --- every answer kind, in every language ---


@pytest.mark.parametrize("ext", list(LANGS))
def test_answer_kinds(client: httpx.Client, api: httpx.Client, upstream: Upstream, ext: str) -> None:
    lang = LANGS[ext]
    [hook_id] = ids(set_hooks(api, "e2e", "auth", [hook("/kinds/**", f"/act.{ext}")]))
    url = "http://auth.test/kinds/x"

    response, mark = send(client, url, "continue")
    assert response.status_code == 200 and response.headers["x-proxy-hooks-hook"] == hook_id
    assert upstream.seen(mark)[0]["method"] == "GET"

    response, mark = send(
        client, url, "modify", method="POST", content=b"original", headers={"x-secret": "s", "x-keep": "k"}
    )
    assert response.status_code == 200
    [seen] = upstream.seen(mark)
    assert seen["method"] == "PUT" and seen["path"] == f"/rewritten?lang={lang}"
    assert seen["headers"]["x-added"] == lang and "x-secret" not in seen["headers"]
    assert seen["headers"]["x-keep"] == "k" and seen["body"] == f"body from {lang}"

    for act, reason in (("block", f"blocked by {lang}"), ("exit2", f"denied by {lang}")):
        response, mark = send(client, url, act)
        assert response.status_code == 403
        assert response.json() == {
            "error": "blocked by proxy hook",
            "hook": hook_id,
            "service": "auth",
            "reason": reason,
        }
        assert upstream.seen(mark) == []

    response, mark = send(client, url, "respond")
    assert response.status_code == 418 and response.text == f"teapot from {lang}"
    assert response.headers["x-mock"] == lang and upstream.seen(mark) == []

    response, mark = send(client, url, "edit-response")
    assert response.status_code == 299 and response.headers["x-edited"] == lang
    assert response.text.startswith(f"edited by {lang}") and len(upstream.seen(mark)) == 1


@pytest.mark.parametrize("ext", list(LANGS))
@pytest.mark.parametrize("act", ["garbage", "crash"])
def test_failures_in_both_modes(
    client: httpx.Client, api: httpx.Client, upstream: Upstream, ext: str, act: str
) -> None:
    [closed, opened] = ids(set_hooks(api, "e2e", "auth", [
        hook("/closed", f"/act.{ext}"), hook("/open", f"/act.{ext}", failure_mode="open"),
    ]))  # fmt: skip
    response, mark = send(client, "http://auth.test/closed", act)
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "proxy hook failed" and body["hook"] == closed
    expected = "bad script output" if act == "garbage" else "script exited with code"
    assert expected in body["reason"]
    assert upstream.seen(mark) == []
    response, mark = send(client, "http://auth.test/open", act)
    assert response.status_code == 200 and len(upstream.seen(mark)) == 1
    assert response.headers["x-proxy-hooks-hook"] == opened


def _events(api: httpx.Client, hook_id: str, outcome: str) -> list[dict[str, Any]]:
    """The hook's recorded runs with that outcome (what the events API serves)."""
    answer = api.get("/api/v1/containers/e2e/proxy/events", params={"hookId": hook_id, "outcome": outcome})
    events: list[dict[str, Any]] = answer.json()["data"]["events"]
    return events


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("ext", list(LANGS))
@pytest.mark.parametrize("mode", ["closed", "open"])
def test_timeout_kills_the_process_group(
    client: httpx.Client, api: httpx.Client, upstream: Upstream, tmp_path: Path, ext: str, mode: str
) -> None:
    [hook_id] = ids(
        set_hooks(api, "e2e", "auth", [hook("/slow", f"/act.{ext}", timeout=800, failure_mode=mode)])
    )
    pidfile = tmp_path / "pids"
    response, mark = send(client, "http://auth.test/slow", "hang", headers={"x-pidfile": str(pidfile)})
    if mode == "closed":
        assert response.status_code == 504
        assert response.json()["hook"] == hook_id and "timed out after 800 ms" in response.json()["reason"]
        assert upstream.seen(mark) == []
    else:
        assert response.status_code == 200 and len(upstream.seen(mark)) == 1
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    # The script and its child are gone, reaped, not left as zombies.
    wait_for(lambda: not any(_alive(pid) for pid in pids), 10, "the script's process group to be gone")


def test_async_hook_observes_without_delaying(
    client: httpx.Client, api: httpx.Client, proxy: Mitmdump, upstream: Upstream, tmp_path: Path
) -> None:
    [hook_id] = ids(set_hooks(api, "e2e", "auth", [hook("/watch", "/act.py", mode="async", timeout=1500)]))
    response, _ = send(client, "http://auth.test/watch", "respond")
    assert response.status_code == 200 and response.json()["upstream"] is True  # answer not applied
    wait_for(lambda: _events(api, hook_id, "observed"), 10, "the observed run's event")
    # A hanging async hook: the flow is answered while the script still runs.
    pidfile = tmp_path / "pids"
    response, _ = send(client, "http://auth.test/watch", "hang", headers={"x-pidfile": str(pidfile)})
    assert response.status_code == 200
    pids = [int(p) for p in wait_for(lambda: pidfile.exists() and pidfile.read_text().split(), 10, "pidfile")]
    assert "x-proxy-hooks-hook" not in response.headers
    wait_for(lambda: not any(_alive(int(pid)) for pid in pids), 15, "the async hook to time out")


def test_twenty_concurrent_flows_while_one_hook_hangs(
    client: httpx.Client, api: httpx.Client, tmp_path: Path
) -> None:
    set_hooks(api, "e2e", "auth", [hook("/hang", "/act.py", timeout=2500), hook("/fast/**", "/act.sh")])
    results: dict[str, Any] = {}

    def hanging() -> None:
        results["hang"] = send(
            client, "http://auth.test/hang", "hang", headers={"x-pidfile": str(tmp_path / "pids")}
        )[0]
        results["hang_done"] = time.monotonic()

    slow = threading.Thread(target=hanging)
    slow.start()
    wait_for(lambda: (tmp_path / "pids").exists(), 10, "the hanging hook to start")
    with ThreadPoolExecutor(19) as pool:
        fast = list(pool.map(lambda i: send(client, f"http://auth.test/fast/{i}", "respond")[0], range(19)))
    fast_done = time.monotonic()
    assert [r.status_code for r in fast] == [418] * 19
    assert slow.is_alive() or results["hang_done"] > fast_done  # served while the hook still hung
    slow.join(30)
    assert results["hang"].status_code == 504


def test_a_file_without_known_extension_is_executed_directly(client: httpx.Client, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [hook("/exec", "/act-exec")])
    response, _ = send(client, "http://auth.test/exec", "respond")
    assert response.status_code == 418 and response.headers["x-mock"] == "bash"


def test_api_write_is_live_for_the_next_flow(client: httpx.Client, api: httpx.Client) -> None:
    for ext in ("py", "js", "sh", "py"):
        set_hooks(api, "e2e", "auth", [hook("/live", f"/act.{ext}")])
        assert send(client, "http://auth.test/live", "respond")[0].headers["x-mock"] == LANGS[ext]


def test_hand_edits_go_live_and_invalid_ones_are_ignored(
    client: httpx.Client, api: httpx.Client, home: Path, proxy: Mitmdump
) -> None:
    path = home / "e2e.json"
    set_hooks(api, "e2e", "auth", [hook("/edit", "/act.py")])
    original = path.read_text()
    doc = json.loads(original)
    doc["hooks"]["auth"][0]["script"]["path"] = "/act.js"  # same file_version: a hand edit
    try:
        started = time.monotonic()
        path.write_text(json.dumps(doc, indent=2))
        wait_for(
            lambda: send(client, "http://auth.test/edit", "respond")[0].headers.get("x-mock") == "node",
            10,
            "the hand edit to go live",
        )
        print(f"hand edit live after {time.monotonic() - started:.2f} s")
        version = api.get("/healthz").json()["data"]["containers"][0]["file_version"]
        assert version == json.loads(original)["file_version"] + 1  # a new version, not a silent change

        path.write_text('{"container": "e2e", "hooks": ')  # broken
        wait_for(lambda: api.get("/healthz").json()["data"]["status"] == "degraded", 10, "degraded health")
        error = api.get("/healthz").json()["data"]["containers"][0]["error"]
        assert error and error[0].startswith("body: malformed JSON")
        assert send(client, "http://auth.test/edit", "respond")[0].headers["x-mock"] == "node"  # last good
        assert "keeping the last good version" in proxy.output()
    finally:
        path.write_text(original)
    wait_for(lambda: api.get("/healthz").json()["data"]["status"] == "ok", 10, "recovered health")


def test_https_through_mitmproxy_ca(proxy: Mitmdump, api: httpx.Client, upstream: Upstream) -> None:
    set_hooks(api, "e2e", "auth", [hook("/tls/hooked", "/act.py")])
    with proxy.client(verify=ssl.create_default_context(cafile=proxy.ca_cert)) as http:
        response, _ = send(http, "https://auth.test/tls/hooked", "block")
        assert response.status_code == 403 and response.json()["reason"] == "blocked by python"
        response, mark = send(http, "https://auth.test/tls/plain")
        assert response.status_code == 200 and len(upstream.seen(mark)) == 1


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is the HTTP/2-through-a-proxy client here")
def test_http2_through_the_proxy(proxy: Mitmdump, api: httpx.Client) -> None:
    """httpx does not speak HTTP/2 inside a CONNECT tunnel; curl does."""
    set_hooks(api, "e2e", "auth", [hook("/h2", "/act.py")])
    result = subprocess.run(
        ["curl", "-sS", "--http2", "-x", proxy.proxy_url, "--cacert", str(proxy.ca_cert),
         "-H", "x-act: respond", "-w", "\n%{http_version} %{http_code}", "https://auth.test/h2"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.stdout.splitlines() == ["teapot from python", "2 418"], result.stderr


def test_reverse_mode(proxy: Mitmdump, api: httpx.Client, upstream: Upstream) -> None:
    set_hooks(api, "e2e", "auth", [hook("/rev", "/act.py")])
    with httpx.Client(timeout=30) as http:
        url = f"http://127.0.0.1:{proxy.reverse_port}/rev"
        assert http.get(url, headers={"x-act": "respond"}).status_code == 418
        mark = marker()
        response = http.get(url, headers={"x-marker": mark})
        assert response.status_code == 200 and len(upstream.seen(mark)) == 1


def test_event_carries_the_protocol_fields(client: httpx.Client, api: httpx.Client) -> None:
    [hook_id] = ids(
        set_hooks(api, "e2e", "auth", [hook("/echo", "/act.py", applies_to={"groups": ["locals"]})])
    )
    response, mark = send(client, "http://auth.test/echo?q=1", "echo", method="POST", content=b"\xff\x00")
    event = response.json()
    assert event["version"] == 1 and event["phase"] == "request"
    assert event["container"] == "e2e" and event["service"] == "auth"
    assert event["hook"] == {
        "id": hook_id,
        "position": 0,
        "script": {"path": "/act.py", "subdomain": None, "execId": None},
    }
    assert event["client"] == {"address": "127.0.0.1", "user": None, "groups": ["locals"]}
    request = event["request"]
    assert request["method"] == "POST" and request["path"] == "/echo?q=1" and request["host"] == "auth.test"
    assert ["x-marker", mark] in request["headers"]
    assert request["body"] is None and request["body_base64"] == "/wA="
    assert event["response"] is None


def test_a_large_body_reaches_the_upstream_whole_while_the_event_carries_its_start(
    client: httpx.Client, api: httpx.Client, upstream: Upstream
) -> None:
    set_hooks(api, "e2e", "auth", [hook("/upload", "/event_body.py")])
    payload = b"0123456789abcdef" * (3 * 1024 * 1024 // 16)  # 3 MiB, past the default 1 MiB
    response, mark = send(client, "http://auth.test/upload", method="POST", content=payload)
    assert response.status_code == 200
    [seen] = upstream.seen(mark)
    assert seen["headers"]["x-event-body"] == f"{1024 * 1024} true"
    assert seen["body"] == payload.decode()  # every byte, unchanged
    response, mark = send(client, "http://auth.test/upload", method="POST", content=b"small")
    [seen] = upstream.seen(mark)
    assert seen["headers"]["x-event-body"] == "5 false" and seen["body"] == "small"


def test_scripts_get_a_minimal_environment(client: httpx.Client, api: httpx.Client) -> None:
    """The proxy runs with PROXY_HOOKS_TEST_SECRET set (see the fixture); scripts never see it."""
    set_hooks(api, "e2e", "auth", [hook("/env", "/act.py")])
    env = send(client, "http://auth.test/env", "env")[0].json()
    assert "PROXY_HOOKS_TEST_SECRET" not in env
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
