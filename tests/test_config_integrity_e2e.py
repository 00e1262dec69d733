"""Through a real mitmdump with the addon, in front of a real upstream (issue 11, items 3, 4, 7):

- a container may declare its reject-listed services (`logs`, …): their flows pass untouched,
  and no hook can be put on one, by hand or through the API;
- a hook whose script is not deployed does not stop the proxy: the file loads, the hook fails
  closed, `/healthz` says why until the script is there;
- a hooks file with several problems is refused (at start-up) or kept out (on reload) with
  every problem on its own line.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon.flows import HOOK_HEADER
from tests.conftest import proxy_hooks_command
from tests.harness import Mitmdump, Upstream, container_doc, free_port, hook, wait_for, write_json
from tests.proxy_fixtures import api, upstream  # noqa: F401 - fixtures (with this module's proxy)
from tests.rawhttp import send_raw

SCRIPTS = Path(__file__).parent / "scripts"
HOOKS = "/api/v1/containers/e2e/proxy/hooks"
DENY = '#!/usr/bin/env bash\necho \'{"block": true, "reason": "denied by auth"}\'\n'
# A path a hooked service refuses (an encoded slash) and would rewrite (dot segments, `//`).
AMBIGUOUS = "/a/../b//c%2Fd?q=%2F"


def doc(upstream: Upstream, **hooks: list[dict[str, Any]]) -> dict[str, Any]:
    """The e2e container plus a declared `logs` service; auth denies everything."""
    base = container_doc(upstream)
    base["services"]["logs"] = {"hosts": ["logs.test"], "upstream": upstream.url}
    base["hooks"] = {"auth": [hook("/**", "/deny.sh")], "billing": [], **hooks}
    return base


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Path:
    folder = tmp_path_factory.mktemp("integrity")
    shutil.copytree(SCRIPTS, folder / "scripts")
    (folder / "scripts" / "deny.sh").write_text(DENY)
    # billing: a hand-written hook whose script is not deployed yet.
    write_json(folder / "e2e.json", doc(upstream, billing=[hook("/**", "/later.py")]))
    return folder


@pytest.fixture(scope="module")
def proxy(home: Path) -> Iterator[Mitmdump]:
    process = Mitmdump(home / "e2e.json", home / "confdir")
    yield process
    process.stop()


def health(api: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = api.get("/healthz").json()["data"]
    return data


# --- item 7 ---


def test_a_declared_reject_listed_service_passes_untouched(proxy: Mitmdump, upstream: Upstream) -> None:
    head = f"GET http://logs.test{AMBIGUOUS} HTTP/1.1\r\nHost: logs.test\r\nx-marker: untouched"
    response = send_raw(proxy.port, head)
    assert response.status == 200, response.body
    assert HOOK_HEADER not in {name.lower() for name in response.headers}
    [seen] = upstream.seen("untouched")
    assert seen["raw_path"] == AMBIGUOUS  # not canonicalized, not refused: as the client sent it
    # The same request for a hooked service is refused before any hook runs...
    refused = send_raw(proxy.port, f"GET http://auth.test{AMBIGUOUS} HTTP/1.1\r\nHost: auth.test")
    assert refused.status == 400
    # ...and with a clean path it meets auth's hook, which denies it.
    assert send_raw(proxy.port, "GET http://auth.test/x HTTP/1.1\r\nHost: auth.test").status == 403


def test_a_reject_listed_service_gets_no_protocol_switch(proxy: Mitmdump, upstream: Upstream) -> None:
    """The one thing its flows lose: past a switch to another protocol (h2c, anything but
    WebSocket), requests naming any service could ride the connection to an upstream it shares,
    unseen. So the upgrade is dropped, as for other services. (mitmproxy drops h2c itself.)"""
    head = (
        "GET http://logs.test/switch HTTP/1.1\r\nHost: logs.test\r\nx-marker: switch\r\n"
        "Connection: Upgrade, HTTP2-Settings, keep-alive\r\nUpgrade: foo/1\r\n"
        "HTTP2-Settings: AAMAAABkAAQAAP__"
    )
    assert send_raw(proxy.port, head).status == 200
    [seen] = upstream.seen("switch")
    assert "upgrade" not in seen["headers"] and "http2-settings" not in seen["headers"]


def test_a_reject_listed_service_is_no_way_around_another_services_hooks(proxy: Mitmdump) -> None:
    """It names flows like any service: sent to logs while its Host says auth is two services."""
    response = send_raw(proxy.port, "GET http://logs.test/x HTTP/1.1\r\nHost: auth.test")
    assert response.status == 421
    response = send_raw(proxy.port, "GET http://auth.test/x HTTP/1.1\r\nHost: logs.test")
    assert response.status == 421


def test_no_hook_can_be_put_on_it_through_the_api(api: httpx.Client) -> None:
    etag = api.get(HOOKS).headers["ETag"]
    reason = "service 'logs' is reject-listed (logs, proxy, workspaces): it has no hooks"
    for method, body in (("POST", hook("/**", "/deny.sh")), ("PUT", {"hooks": [hook("/**", "/deny.sh")]})):
        response = api.request(method, f"{HOOKS}/logs", json=body, headers={"If-Match": etag})
        assert response.status_code == 404
        assert response.json()["details"] == [{"field": "service", "reason": reason}]
    assert "logs" not in api.get(HOOKS).json()["data"]["hooks"]


def test_no_hook_can_be_put_on_it_by_hand(
    proxy: Mitmdump, api: httpx.Client, home: Path, upstream: Upstream
) -> None:
    path = home / "e2e.json"
    original = path.read_text()
    version = api.get(HOOKS).headers["ETag"]
    current = json.loads(original)
    current["hooks"]["logs"] = [hook("/**", "/deny.sh")]
    try:
        path.write_text(json.dumps(current))
        line = (
            f"{path}: hooks.logs: service 'logs' is reject-listed (logs, proxy, workspaces): it may be "
            "declared under 'services', but it never has hooks (its flows pass untouched); remove the 1 "
            "hook listed here"
        )
        wait_for(lambda: line in proxy.output(), 10, "the rejected edit in the log")
        assert health(api)["containers"][0]["error"] == [line.removeprefix(f"{path}: ")]
        assert api.get(HOOKS).headers["ETag"] == version  # the last good version is enforced
        response = send_raw(proxy.port, "GET http://logs.test/still HTTP/1.1\r\nHost: logs.test")
        assert response.status == 200 and HOOK_HEADER not in {n.lower() for n in response.headers}
    finally:
        path.write_text(original)
    wait_for(lambda: health(api)["containers"][0]["error"] is None, 10, "the file to be valid again")


# --- item 4 ---


def test_a_hook_whose_script_is_not_deployed_fails_closed_and_degrades_health(
    proxy: Mitmdump, api: httpx.Client, home: Path
) -> None:
    # The proxy started all the same, and said which hook cannot run.
    assert re.search(r"e2e\.json: hooks\.billing\[0\]\.script\.path: no script /later\.py", proxy.output())
    with proxy.client() as http:
        response = http.get("http://billing.test/x")
        assert response.status_code == 502
        assert "script not found: /later.py" in response.json()["reason"]
        data = health(api)
        assert data["status"] == "degraded"
        [reason] = [r for r in data["reasons"] if "/later.py" in r]
        assert reason.startswith("e2e/billing hook ") and "fail closed (502) until it is fixed" in reason
        # Deployed: the hook runs, and health is ok again.
        shutil.copy(home / "scripts" / "act.py", home / "scripts" / "later.py")
        try:
            assert http.get("http://billing.test/x").status_code == 200
            wait_for(lambda: health(api)["status"] == "ok", 10, "health to be ok")
        finally:
            (home / "scripts" / "later.py").unlink()


def test_run_starts_with_a_half_deployed_folder(tmp_path: Path, upstream: Upstream) -> None:
    """`proxy-hooks run` refuses a broken file before starting, never a missing script."""
    (tmp_path / "scripts").mkdir()
    config = write_json(tmp_path / "e2e.json", doc(upstream, billing=[hook("/**", "/later.py")]))
    health_url = f"http://127.0.0.1:{free_port()}/healthz"
    log = tmp_path / "run.log"
    command = [
        *proxy_hooks_command(), "run", "--config", str(config), "--listen-port", "0",
        "--api", health_url.split("/")[2], "--events", str(tmp_path / "events.db"),
        "--set", f"confdir={tmp_path / 'conf'}",
    ]  # fmt: skip
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:

        def answered() -> dict[str, Any] | None:
            assert proc.poll() is None, log.read_text()
            try:
                data: dict[str, Any] = httpx.get(health_url).json()["data"]
            except httpx.TransportError:
                return None
            return data

        data = wait_for(answered, 30, "proxy-hooks run to serve its API")
        assert data["status"] == "degraded" and any("/later.py" in r for r in data["reasons"])
        assert "hooks.billing[0].script.path: no script /later.py" in log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)


# --- item 3 ---

BROKEN = {
    "hooks.auth[0].timeout": "must be 1-30000 ms, got 0",
    "hooks.auth[0].applies_to.groups[0]": "group 'ops' is not defined in container 'e2e' "
    "(defined: admins, locals, remote); add it under 'groups' first",
    "hooks.mail": "service 'mail' is not defined under 'services' (defined: auth, billing, logs)",
}


def broken(upstream: Upstream) -> dict[str, Any]:
    bad = doc(upstream, mail=[])
    bad["hooks"]["auth"] = [hook("/**", "/deny.sh", timeout=0, applies_to={"groups": ["ops"]})]
    return bad


def test_a_reload_reports_every_problem_on_its_own_line(
    proxy: Mitmdump, api: httpx.Client, home: Path, upstream: Upstream
) -> None:
    path = home / "e2e.json"
    original = path.read_text()
    try:
        write_json(path, broken(upstream))
        lines = [f"  {path}: {field}: {reason}" for field, reason in BROKEN.items()]
        wait_for(
            lambda: all(line in proxy.output().splitlines() for line in lines), 10, "every problem logged"
        )
        assert sorted(health(api)["containers"][0]["error"]) == sorted(f"{f}: {r}" for f, r in BROKEN.items())
    finally:
        path.write_text(original)
    wait_for(lambda: health(api)["containers"][0]["error"] is None, 10, "the file to be valid again")


def test_start_up_reports_every_problem_on_its_own_line(tmp_path: Path, upstream: Upstream) -> None:
    shutil.copytree(SCRIPTS, tmp_path / "scripts")
    (tmp_path / "scripts" / "deny.sh").write_text(DENY)
    path = write_json(tmp_path / "e2e.json", broken(upstream))
    with pytest.raises(RuntimeError) as exited:
        Mitmdump(path, tmp_path / "confdir").stop()
    output = str(exited.value).splitlines()
    for field, reason in BROKEN.items():
        assert f"  {path}: {field}: {reason}" in output, output
