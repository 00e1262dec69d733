"""`proxy-hooks hook-server` (issue 13, item 2): the folder's handle(event) scripts served as
remote hooks to a real mitmdump, with the control API's token and Host rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import proxy_hooks_command
from tests.harness import Mitmdump, Upstream, container_doc, free_port, set_hooks, wait_for, write_json
from tests.proxy_fixtures import api, upstream  # noqa: F401 - fixtures (with this module's proxy)

SCRIPTS = Path(__file__).parent / "scripts"
TOKEN = "hook-server-test-token"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


class HookServer:
    def __init__(self, scripts: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [*proxy_hooks_command(), "hook-server", "--scripts", str(scripts)]
        command += ["--listen", f"127.0.0.1:{self.port}", "--token", TOKEN]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        wait_for(lambda: any("listening on" in line for line in self.lines), 30, "the hook server")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookServer]:
    folder = tmp_path_factory.mktemp("hook-server")
    shutil.copytree(SCRIPTS, folder / "scripts")
    process = HookServer(folder / "scripts")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, server: HookServer
) -> Iterator[Mitmdump]:
    folder = tmp_path_factory.mktemp("proxy")
    (folder / "scripts").mkdir()
    doc = container_doc(upstream)
    doc["services"]["hooks"] = {"hosts": ["hooks.internal"], "upstream": server.url}
    write_json(folder / "e2e.json", doc)
    process = Mitmdump(folder / "e2e.json", folder / "confdir", env={"PROXY_HOOKS_REMOTE_TOKEN": TOKEN})
    yield process
    process.stop()


@pytest.mark.parametrize(
    ("script", "lang"), [("/session.py", "python"), pytest.param("/session.js", "node", marks=needs_node)]
)
def test_the_proxy_runs_handle_scripts_on_the_hook_server(
    proxy: Mitmdump, api: httpx.Client, server: HookServer, script: str, lang: str
) -> None:
    spec = {
        "match": {"method": "*", "path": "/**"},
        "script": {"subdomain": "hooks", "path": script, "execId": "t1"},
    }
    set_hooks(api, "e2e", "auth", [spec])
    with proxy.client() as http:
        blocked = http.get("http://auth.test/x", headers={"x-act": "block"})
        first = http.get("http://auth.test/x", headers={"x-act": "whoami"}).json()
        again = http.get("http://auth.test/y", headers={"x-act": "whoami"}).json()
        passed = http.get("http://auth.test/z", headers={"x-act": "continue"})
    assert blocked.status_code == 403 and blocked.json()["reason"] == f"blocked by {lang} session"
    assert first["lang"] == lang and first["pid"] == again["pid"]  # one session worker, kept
    assert passed.json()["upstream"] is True


@needs_node
def test_the_hook_server_serves_a_typescript_handle(proxy: Mitmdump, api: httpx.Client) -> None:
    spec = {
        "match": {"method": "*", "path": "/**"},
        "script": {"subdomain": "hooks", "path": "/typed_session.ts", "execId": "ts"},
    }
    set_hooks(api, "e2e", "auth", [spec])
    with proxy.client() as http:
        blocked = http.get("http://auth.test/x", headers={"x-act": "block"})
    assert blocked.status_code == 403
    assert blocked.json()["reason"] == "blocked by a typescript session (GET)"


def test_a_missing_script_is_a_failed_run_naming_the_status(proxy: Mitmdump, api: httpx.Client) -> None:
    spec = {"match": {"method": "*", "path": "/**"}, "script": {"subdomain": "hooks", "path": "/nope.py"}}
    set_hooks(api, "e2e", "auth", [spec])
    with proxy.client() as http:
        response = http.get("http://auth.test/x")
    assert response.status_code == 502 and re.search(r"/nope\.py answered 404", response.text), response.text


def test_the_token_and_host_rules_of_the_control_api(server: HookServer) -> None:
    event = {"version": 1, "phase": "request", "request": {"headers": [["x-act", "whoami"]]}}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/session.py", json=event).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert http.post("/session.py", json=event, headers=auth).json()["response"]["status"] == 200
        assert (
            http.post("/session.py", json=event, headers={**auth, "Host": "evil.example"}).status_code == 421
        )
        assert http.post("/session.py", content=b"{}", headers=auth).status_code == 415
