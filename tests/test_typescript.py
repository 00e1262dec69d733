"""TypeScript hooks through a real mitmdump in front of a real upstream: a per-run `.ts` hook and
an exec-session `.ts` hook answering and changing flows, errors that name the TypeScript file
and line (a TypeError thrown at run time, a syntax error), and a proxy whose hooks_tsx points at
nothing failing its TypeScript hooks closed with what to install.

node here may strip types itself (>= 22.13) or need tsx (`make` installs a pinned one in
var/node): either way the hooks must behave the same."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon import typescript
from tests.conftest import ApiProcess, demo, write_container
from tests.harness import Mitmdump, Upstream, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, home, upstream  # noqa: F401 - fixtures

# Not skipped without tsx: `make test` installs it, and a TypeScript that silently stopped
# working must fail here.
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

EVENTS = "/api/v1/containers/e2e/proxy/events"


@pytest.fixture(scope="module")
def proxy(home: Path, upstream: Upstream) -> Iterator[Mitmdump]:
    process = Mitmdump(home / "e2e.json", home / "confdir")
    yield process
    process.stop()


def send(proxy: Mitmdump, act: str, **headers: str) -> httpx.Response:
    with proxy.client() as http:
        return http.get("http://auth.test/x", headers={"x-act": act, **headers})


def session_hook(script: str) -> dict[str, Any]:
    spec = hook("/**", script)
    spec["script"]["execId"] = f"ts-{uuid.uuid4().hex[:8]}"  # a fresh worker per test
    return spec


def failed_event(api: httpx.Client, script: str) -> dict[str, Any]:
    """The event of the newest failed run of `script` (events are written in the background)."""

    def found() -> dict[str, Any] | None:
        events = api.get(EVENTS, params={"limit": 5}).json()["data"]["events"]
        return next((e for e in events if e["script"] == script and e["outcome"] == "failed"), None)

    event: dict[str, Any] = wait_for(found, 10, f"an event of {script}")
    return event


def test_a_per_run_typescript_hook_blocks_and_modifies(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream
) -> None:
    set_hooks(api, "e2e", "auth", [hook("/**", "/typed.ts")])
    blocked = send(proxy, "block")
    assert blocked.status_code == 403
    assert blocked.json()["reason"] == "blocked by typescript (GET)"
    marker = uuid.uuid4().hex
    assert send(proxy, "modify", **{"x-marker": marker}).status_code == 200
    assert upstream.seen(marker)[0]["headers"]["x-added"] == "typescript"


def test_a_typescript_session_hook_answers_from_one_worker(proxy: Mitmdump, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [session_hook("/typed_session.ts")])
    assert send(proxy, "block").json()["reason"] == "blocked by a typescript session (GET)"
    answered = send(proxy, "respond")
    assert answered.status_code == 200
    # The module stays loaded between runs: its counter goes on.
    assert answered.text == "typescript session run 2" and answered.headers["x-runs"] == "2"


def test_a_runtime_error_names_the_typescript_line(proxy: Mitmdump, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [hook("/**", "/typed.ts")])
    failed = send(proxy, "crash")
    assert failed.status_code == 502
    reason = failed.json()["reason"]
    assert "TypeError" in reason and "typed.ts:23" in reason, reason
    event = failed_event(api, "/typed.ts")
    assert event["runtime"] == "typescript" and "typed.ts:23" in event["error"]


def test_a_session_runtime_error_names_the_typescript_line(proxy: Mitmdump, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [session_hook("/typed_session.ts")])
    reason = send(proxy, "crash").json()["reason"]
    assert reason.startswith("handle raised TypeError: ") and "(typed_session.ts:16:" in reason, reason


@pytest.mark.parametrize("session", [False, True], ids=["per-run", "session"])
def test_a_syntax_error_names_the_typescript_line(proxy: Mitmdump, api: httpx.Client, session: bool) -> None:
    spec = session_hook("/typed_broken.ts") if session else hook("/**", "/typed_broken.ts")
    set_hooks(api, "e2e", "auth", [spec])
    failed = send(proxy, "block")
    assert failed.status_code == 502
    # Short: the file, the TypeScript line and column, and what is wrong; no compiler stack.
    reason = failed.json()["reason"]
    assert "typed_broken.ts:4:" in reason and "Expected" in reason, reason
    assert "node_modules" not in reason and len(reason) < 300, reason


def test_without_tsx_typescript_hooks_fail_closed_naming_what_to_install(
    home: Path, upstream: Upstream, tmp_path: Path
) -> None:
    if typescript.strips_types(typescript.node_version(shutil.which("node") or "node")):
        pytest.skip("this node strips types itself: hooks_tsx is not used")
    nowhere = tmp_path / "no-tsx-here"
    proxy = Mitmdump(home / "e2e.json", tmp_path / "confdir", "--set", f"hooks_tsx={nowhere}")
    try:
        with proxy.api() as api:
            for spec in (hook("/**", "/typed.ts"), session_hook("/typed_session.ts")):
                set_hooks(api, "e2e", "auth", [spec])
                failed = send(proxy, "block")
                assert failed.status_code == 502, failed.text
                reason = failed.json()["reason"]
                assert f"hooks_tsx '{nowhere}' is not a tsx install" in reason and "npm install tsx" in reason
            # failure_mode open lets the flow through without the hook, as for any failed run.
            set_hooks(api, "e2e", "auth", [hook("/**", "/typed.ts", failure_mode="open")])
            assert send(proxy, "block").status_code == 200
            health = api.get("/healthz").json()["data"]
            assert health["status"] == "degraded"
            [reason] = [r for r in health["reasons"] if "/typed.ts" in r]
            assert "is not a tsx install" in reason and "pass without it (failure_mode open)" in reason
        assert "is not a tsx install" in proxy.output()  # the warning at start-up
    finally:
        proxy.stop()


def test_a_dry_run_runs_a_typescript_hook(proxy: Mitmdump, api: httpx.Client) -> None:
    [spec] = set_hooks(api, "e2e", "auth", [hook("/**", "/typed.ts")])["hooks"]
    url = f"/api/v1/containers/e2e/proxy/hooks/auth/{spec['id']}/test"
    data = api.post(url, json={"method": "POST", "headers": {"x-act": "block"}}).json()["data"]
    assert data["runtime"] == "typescript" and data["outcome"] == "blocked"
    assert data["reason"] == "blocked by typescript (POST)"


def test_an_inline_typescript_dry_run(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json", demo(
        hooks={"auth": [{"id": "01hz8x9k2b3c4d5e6f7g8h9j0k", "match": {"method": "*", "path": "/**"},
                         "script": {"path": "/hooks/x.py"}}]}))  # fmt: skip
    process = ApiProcess(path, "--allow-inline-scripts")
    source = (
        "const reason: string = 'inline typescript';\n"
        "process.stdout.write(JSON.stringify({ block: true, reason }));\n"
    )
    try:
        with process.client() as http:
            test_url = "/api/v1/containers/demo/proxy/hooks/auth/01hz8x9k2b3c4d5e6f7g8h9j0k/test"
            body = {"script_inline": {"language": "typescript", "source": source}}
            data = http.post(test_url, json=body).json()["data"]
            assert data["runtime"] == "typescript" and data["reason"] == "inline typescript", data
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("version", "strips"),
    [((20, 20, 2), False), ((22, 12, 0), False), ((22, 13, 0), True), ((23, 1, 9), False), ((23, 2, 0), True),
     ((24, 0, 0), True), (None, False)],
)  # fmt: skip
def test_which_node_strips_types_itself(version: tuple[int, int, int] | None, strips: bool) -> None:
    assert typescript.strips_types(version) is strips


def test_tsx_is_found_from_its_executable_and_its_esbuild_beside_it() -> None:
    """What `make` installs: the link npm puts in node_modules/.bin leads to the package, and
    from there to the esbuild executable the node side runs."""
    project = typescript.PROJECT_TSX
    assert typescript.tsx_package(str(project.parent / ".bin" / "tsx")) == project
    esbuild = typescript.esbuild_of(project)
    assert esbuild is not None and esbuild.name == "esbuild" and esbuild.is_file()
    compiler, why = typescript.compiler(shutil.which("node"), "/nowhere/tsx")
    if compiler != "node":  # a node that strips types never needs tsx
        assert compiler is None and why.startswith("hooks_tsx '/nowhere/tsx' is not a tsx install")
