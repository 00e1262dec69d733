"""Exec sessions through a real mitmdump, in front of a real upstream, with real Python and node
workers: concurrency on one worker, a timeout among successes, stuck, crashed and flooding
workers killed and restarted, reload on change, idle exit, no orphans after the proxy stops,
the missing-handle error in the run, /healthz and the catalog."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Mitmdump, Upstream, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, home, upstream  # noqa: F401 - fixtures

IDLE_S = 2
SCRIPT = {"py": "/session.py", "js": "/session.js"}
RUNTIME = {"py": "python", "js": "node"}
CATALOG = "/api/v1/containers/e2e/proxy/catalog"

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
LANGS = [pytest.param("py", id="python"), pytest.param("js", id="node", marks=needs_node)]


@pytest.fixture(scope="module")
def proxy(home: Path, upstream: Upstream) -> Iterator[Mitmdump]:
    process = Mitmdump(
        home / "e2e.json",
        home / "confdir",
        "--set",
        f"hooks_exec_idle={IDLE_S}",
        env={"PROXY_HOOKS_TEST_SECRET": "leak"},
    )
    yield process
    process.stop()


def session_hook(script: str, exec_id: str, **extra: Any) -> dict[str, Any]:
    spec = hook("/**", script, **extra)
    spec["script"]["execId"] = exec_id
    return spec


def use(api: httpx.Client, lang: str, **extra: Any) -> str:
    """Route every auth.test request to the session script; a fresh execId per test."""
    exec_id = f"s-{uuid.uuid4().hex[:8]}"
    set_hooks(api, "e2e", "auth", [session_hook(SCRIPT[lang], exec_id, **extra)])
    return exec_id


def send(proxy: Mitmdump, act: str, **headers: str) -> httpx.Response:
    with proxy.client() as http:
        return http.get("http://auth.test/x", headers={"x-act": act, **headers})


def concurrently(proxy: Mitmdump, *calls: tuple[str, dict[str, str]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: send(proxy, call[0], **call[1]), calls))


def alive(pid: int) -> bool:
    """Running (a zombie has exited: it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def workers(api: httpx.Client, exec_id: str) -> list[dict[str, Any]]:
    health = api.get("/healthz").json()["data"]
    return [w for w in health["exec_sessions"]["workers"] if w["exec_id"] == exec_id]


def whoami(proxy: Mitmdump) -> dict[str, Any]:
    response = send(proxy, "whoami")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("lang", LANGS)
def test_concurrent_runs_share_one_worker(proxy: Mitmdump, api: httpx.Client, lang: str) -> None:
    use(api, lang, timeout=10_000)
    gathering = {"x-gathering": uuid.uuid4().hex, "x-count": "8"}
    # Each run waits until all eight are in flight at once: a worker that ran them one after
    # the other would time every one of them out.
    responses = concurrently(proxy, *[("gather", gathering)] * 8)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    pids = {r.json()["pid"] for r in responses}
    assert len(pids) == 1
    assert {r.json()["lang"] for r in responses} == {RUNTIME[lang]}
    assert whoami(proxy)["pid"] in pids  # and later runs reuse it


@pytest.mark.parametrize("lang", LANGS)
def test_one_run_times_out_while_others_succeed(proxy: Mitmdump, api: httpx.Client, lang: str) -> None:
    use(api, lang, timeout=1000)
    first = whoami(proxy)["pid"]
    slow, *quick = concurrently(proxy, ("sleep", {"x-sleep": "30"}), *[("sleep", {"x-sleep": "0.2"})] * 4)
    assert slow.status_code == 504
    assert slow.json()["reason"] == "script timed out after 1000 ms"
    assert [r.status_code for r in quick] == [200] * 4
    assert {r.json()["pid"] for r in quick} == {first}
    # A timed-out run of an async handle does not cost the worker: it still answers pings.
    assert whoami(proxy)["pid"] == first


@pytest.mark.parametrize("lang", LANGS)
def test_stuck_worker_is_killed_and_restarted(proxy: Mitmdump, api: httpx.Client, lang: str) -> None:
    exec_id = use(api, lang, timeout=3000)
    first = whoami(proxy)["pid"]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(send, proxy, "spin")
        # The spin's frame is on the worker's pipe before the bystander's, so the worker takes it
        # first and blocks: the bystander's short sleep can never run, whatever the machine's load
        # (sent together, a late spin could find the bystander already done).
        wait_for(lambda: workers(api, exec_id)[0]["in_flight"] == 1, 10, "the spin in flight")
        bystander = send(proxy, "sleep", **{"x-sleep": "0.1"})
        stuck = pending.result()
    assert stuck.status_code == 504, stuck.text
    # The bystander was in flight on the stuck worker: it fails (or times out) on its own.
    assert bystander.status_code in (502, 504), bystander.text
    wait_for(lambda: gone(first), 10, "the stuck worker to be killed and reaped")
    restarted = wait_for(
        lambda: (r := send(proxy, "whoami")).status_code == 200 and r.json(), 10, "a new worker"
    )
    assert restarted["pid"] != first
    [row] = workers(api, exec_id)
    assert row["restarts"] == 1
    assert "did not answer a ping" in row["last_failure"]


@pytest.mark.parametrize("lang", LANGS)
def test_crash_mid_run_fails_the_runs_in_flight(proxy: Mitmdump, api: httpx.Client, lang: str) -> None:
    exec_id = use(api, lang, timeout=5000)
    first = whoami(proxy)["pid"]
    gathering = {"x-gathering": uuid.uuid4().hex, "x-count": "2"}  # never complete: one comes
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(send, proxy, "gather", **gathering)
        wait_for(lambda: workers(api, exec_id)[0]["in_flight"] == 1, 10, "the first run in flight")
        crash = send(proxy, "crash")
        waiting = pending.result()
    for response in (waiting, crash):
        assert response.status_code == 502, response.text
        reason = response.json()["reason"]
        assert f"exec session {exec_id!r} ({RUNTIME[lang]}) exited with code 3" in reason
    # The in-flight run failed because the worker died (its reason says so), not at its timeout.
    restarted = wait_for(
        lambda: (r := send(proxy, "whoami")).status_code == 200 and r.json(), 10, "a new worker"
    )
    assert restarted["pid"] != first
    assert gone(first)
    assert workers(api, exec_id)[0]["restarts"] == 1


@pytest.mark.parametrize("lang", LANGS)
def test_a_flooding_worker_is_killed(proxy: Mitmdump, api: httpx.Client, lang: str) -> None:
    use(api, lang, timeout=20_000)
    first = whoami(proxy)["pid"]
    flood = send(proxy, "flood")
    assert flood.status_code == 502
    assert "flooded its output" in flood.json()["reason"]
    wait_for(lambda: gone(first), 10, "the flooding worker to be reaped")
    assert wait_for(lambda: (r := send(proxy, "whoami")).status_code == 200 and r.json(), 10)["pid"] != first


@pytest.mark.parametrize("lang", LANGS)
def test_a_changed_script_is_reloaded_in_its_worker(
    proxy: Mitmdump, api: httpx.Client, home: Path, lang: str
) -> None:
    name = f"reload-{uuid.uuid4().hex[:6]}.{lang}"
    script = home / "scripts" / name
    shutil.copy(home / "scripts" / SCRIPT[lang].lstrip("/"), script)
    set_hooks(api, "e2e", "auth", [session_hook(f"/{name}", "reload", timeout=5000)])
    before = whoami(proxy)
    assert before["version"] == "v1"
    source = script.read_text()
    script.write_text(
        source.replace('VERSION = "v1"', 'VERSION = "v2"').replace("VERSION = 'v1'", "VERSION = 'v2'")
    )
    after = whoami(proxy)
    assert after["version"] == "v2"
    assert after["pid"] == before["pid"]  # reloaded in place, not a new worker


@pytest.mark.parametrize("lang", LANGS)
def test_an_idle_worker_exits_and_the_next_run_starts_one(
    proxy: Mitmdump, api: httpx.Client, lang: str
) -> None:
    exec_id = use(api, lang)
    first = whoami(proxy)["pid"]
    wait_for(lambda: gone(first), IDLE_S + 10, f"the worker to exit after {IDLE_S} s idle")
    # Its supervisor exits just after it; the proxy counts the worker stopped once that is seen.
    wait_for(lambda: workers(api, exec_id)[0]["state"] == "stopped", 10, "the worker to be counted stopped")
    assert workers(api, exec_id)[0]["restarts"] == 0  # an idle exit is not a failure
    assert whoami(proxy)["pid"] != first


@pytest.mark.parametrize("lang", LANGS)
def test_missing_handle_is_a_clear_error_in_run_healthz_and_catalog(
    proxy: Mitmdump, api: httpx.Client, home: Path, lang: str
) -> None:
    # The API takes a session hook only if its script defines handle; a later deploy drops it.
    script = f"/broken.{lang}"
    shutil.copy(home / "scripts" / f"session.{lang}", home / "scripts" / script.lstrip("/"))
    [created] = set_hooks(api, "e2e", "auth", [session_hook(script, "broken")])["hooks"]
    shutil.copy(home / "scripts" / f"nohandle.{lang}", home / "scripts" / script.lstrip("/"))
    expected = f"broken.{lang} has no{' exported' if lang == 'js' else ''} handle(event) function"

    def health_problem() -> str:
        health = api.get("/healthz").json()["data"]
        assert health["status"] == "degraded"
        [problem] = [p for p in health["exec_sessions"]["problems"] if p["hook"] == created["id"]]
        assert (problem["service"], problem["exec_id"], problem["script"]) == ("auth", "broken", script)
        return str(problem["problem"])

    def catalog_problem() -> str:
        [entry] = api.get(CATALOG).json()["data"]["services"]["auth"]
        assert entry["session"]["exec_id"] == "broken"
        assert entry["problem"] == entry["session"]["problem"]
        return str(entry["problem"])

    # Before any flow (the script is read, not run), and after a run (the worker's own word).
    assert expected in health_problem()
    assert expected in catalog_problem()
    response = send(proxy, "whoami")
    assert response.status_code == 502
    assert expected in response.json()["reason"]
    assert "exec session" in response.json()["reason"]
    assert expected in health_problem()
    assert expected in catalog_problem()


@pytest.mark.parametrize("lang", LANGS)
def test_session_answers_logs_and_environment(proxy: Mitmdump, api: httpx.Client, lang: str) -> None:
    use(api, lang)
    assert send(proxy, "block").json()["reason"] == f"blocked by {RUNTIME[lang]} session"
    raised = send(proxy, "raise")
    assert raised.status_code == 502
    assert "handle raised" in raised.json()["reason"] and "no such user" in raised.json()["reason"]
    env = send(proxy, "env").json()
    assert "PROXY_HOOKS_TEST_SECRET" not in env
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    # What a run writes to stderr is captured into its own event.
    assert send(proxy, "continue").status_code == 200

    def traced() -> list[dict[str, Any]]:
        found = api.get("/api/v1/containers/e2e/proxy/events", params={"limit": 20}).json()["data"]["events"]
        return [e for e in found if e.get("stderr") and f"trace from {RUNTIME[lang]} session" in e["stderr"]]

    assert wait_for(traced, 10, "the traced run's event")[0]["outcome"] == "continued"


@needs_node
def test_an_es_module_serves_a_session(proxy: Mitmdump, api: httpx.Client) -> None:
    set_hooks(api, "e2e", "auth", [session_hook("/session.mjs", "esm")])
    response = send(proxy, "whoami")
    assert response.status_code == 403
    assert response.json()["reason"] == "blocked by an ES module (GET)"


def test_per_run_scripts_are_started_by_the_spawner(proxy: Mitmdump, api: httpx.Client) -> None:
    """Hooks without execId still run one process per run, but the spawner worker forks them
    (through a per-run supervisor, a fork of its own), not the proxy's event loop; when it dies,
    the next run gets a new one."""
    set_hooks(api, "e2e", "auth", [hook("/**", "/act.py")])

    def parents() -> tuple[int, int]:
        response = send(proxy, "parent")
        assert response.status_code == 200, response.text
        return int(response.json()["ppid"]), int(response.json()["grandparent"])

    supervisor, first = parents()
    [spawner] = workers(api, "per-run spawner")
    assert spawner["pid"] == first != proxy.proc.pid
    assert supervisor not in (first, proxy.proc.pid)
    os.kill(first, 9)
    wait_for(lambda: gone(first), 10, "the killed spawner to be reaped")
    second = wait_for(lambda: (r := send(proxy, "parent")).status_code == 200 and r.json()["grandparent"], 10)
    assert second not in (first, proxy.proc.pid)


def test_no_worker_or_child_outlives_the_proxy(home: Path, upstream: Upstream, tmp_path: Path) -> None:
    own = Mitmdump(home / "e2e.json", tmp_path / "confdir")
    try:
        with own.api() as own_api:
            langs = ["py", "js"] if shutil.which("node") else ["py"]
            pids: list[int] = []
            for lang in langs:
                use(own_api, lang)
                pidfile = tmp_path / f"{lang}.pids"
                assert send(own, "child", **{"x-pidfile": str(pidfile)}).status_code == 200
                pids += [int(p) for p in pidfile.read_text().split()]
            assert all(alive(pid) for pid in pids)
    finally:
        own.stop()
    assert own.proc.returncode == 0, own.output()
    # Killed and reaped by the proxy itself, children included: no zombies left behind either.
    wait_for(lambda: all(gone(pid) for pid in pids), 10, f"workers and their children {pids} to be gone")
