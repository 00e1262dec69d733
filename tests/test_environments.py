"""Environments (issue 13, item 4), through a real mitmdump in front of a real upstream: a
literal and a `from_env` variable reach python, node and bash scripts and exec-session workers
(keyed by their environment); the `from_env` value never shows in the API, events or logs; an
undefined environment is a 422, an unset `from_env` a `check` error and a refused reload; a dry
run takes another environment."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon.scripts import SAFE_PATH
from tests.conftest import proxy_hooks_command
from tests.harness import Mitmdump, Upstream, container_doc, hook, set_hooks, wait_for, write_json
from tests.proxy_fixtures import api, home_with, upstream  # noqa: F401 - fixtures (with this module's proxy)

SCRIPTS = Path(__file__).parent / "scripts"
SECRET = "sk-live-7d3f-not-for-your-eyes"
OTHER_SECRET = "sk-staging-91ab-also-secret"
BASE = "http://billing.internal:8080"
STAGING_BASE = "http://staging.internal:8080"
ENVIRONMENTS = {
    "default": {"API_BASE": BASE, "API_KEY": {"from_env": "BILLING_KEY"}},
    "staging": {"API_BASE": STAGING_BASE, "API_KEY": {"from_env": "STAGING_BILLING_KEY"}},
}
EVENTS = "/api/v1/containers/e2e/proxy/events"
HOOKS = "/api/v1/containers/e2e/proxy/hooks"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Path:
    return home_with(tmp_path_factory, upstream, "environments", environments=ENVIRONMENTS)


@pytest.fixture(scope="module")
def proxy(home: Path, upstream: Upstream) -> Iterator[Mitmdump]:
    env = {"BILLING_KEY": SECRET, "STAGING_BILLING_KEY": OTHER_SECRET, "PROXY_HOOKS_TEST_SECRET": "leak"}
    process = Mitmdump(home / "e2e.json", home / "confdir", env=env)
    yield process
    process.stop()


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def call(proxy: Mitmdump) -> dict[str, Any]:
    with proxy.client() as http:
        response = http.get(f"http://auth.test/env/{uuid.uuid4().hex}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def only_hook(api: httpx.Client, script: str, exec_id: str | None = None, **extra: Any) -> str:
    spec = hook("/env/**", script, **extra)
    if exec_id is not None:
        spec["script"]["execId"] = exec_id
    return str(set_hooks(api, "e2e", "auth", [spec])["hooks"][0]["id"])


SCRIPT_KINDS = [
    pytest.param("/env_echo.py", None, "python", id="python"),
    pytest.param("/env_echo.js", None, "node", id="node", marks=needs_node),
    pytest.param("/env_echo.sh", None, "bash", id="bash"),
    pytest.param("/env_session.py", "env-py", "python-session", id="python-session"),
    pytest.param("/env_session.js", "env-js", "node-session", id="node-session", marks=needs_node),
]


@pytest.mark.parametrize(("script", "exec_id", "lang"), SCRIPT_KINDS)
def test_a_literal_and_a_from_env_variable_reach_the_script(
    proxy: Mitmdump, api: httpx.Client, script: str, exec_id: str | None, lang: str
) -> None:
    only_hook(api, script, exec_id)
    body = call(proxy)
    assert body["lang"] == lang
    assert body["api_base"] == BASE
    assert body["api_key_sha256"] == digest(SECRET)
    # On top of the minimal environment, never instead of it; nothing else of the proxy's.
    assert body["path"] == SAFE_PATH
    assert body["proxy_secret"] in (None, "")


def test_a_hook_names_another_environment(proxy: Mitmdump, api: httpx.Client) -> None:
    only_hook(api, "/env_echo.py", environment="staging")
    body = call(proxy)
    assert (body["api_base"], body["api_key_sha256"]) == (STAGING_BASE, digest(OTHER_SECRET))


def test_a_session_worker_is_keyed_by_its_environment(proxy: Mitmdump, api: httpx.Client) -> None:
    """One execId, two environments: two workers, each with its own variables."""
    exec_id = f"env-{uuid.uuid4().hex[:8]}"
    default = hook("/env/default/**", "/env_session.py")
    staging = hook("/env/staging/**", "/env_session.py", environment="staging")
    for spec in (default, staging):
        spec["script"]["execId"] = exec_id
    set_hooks(api, "e2e", "auth", [default, staging])
    with proxy.client() as http:
        first = http.get("http://auth.test/env/default/x").json()
        second = http.get("http://auth.test/env/staging/x").json()
        again = http.get("http://auth.test/env/default/y").json()
    assert first["api_base"] == BASE and second["api_base"] == STAGING_BASE
    assert first["pid"] != second["pid"] and again["pid"] == first["pid"]
    sessions = {
        (s["exec_id"], s["environment"])
        for s in api.get("/healthz").json()["data"]["exec_sessions"]["workers"]
    }
    assert {(exec_id, None), (exec_id, "staging")} <= sessions


def test_from_env_values_never_show_in_api_events_or_logs(proxy: Mitmdump, api: httpx.Client) -> None:
    hook_id = only_hook(api, "/env_echo.py")
    call(proxy)
    wait_for(lambda: api.get(EVENTS, params={"hookId": hook_id}).json()["data"]["events"], 10, "the event")
    event = api.get(EVENTS, params={"hookId": hook_id}).json()["data"]["events"][0]
    # The script printed the key to stderr: what is recorded has it masked.
    assert event["stderr"] == "key=***"
    catalog = api.get("/api/v1/containers/e2e/proxy/catalog").json()["data"]["services"]["auth"][0]
    assert catalog["environment"] == {
        "name": "default",
        "variables": {"API_BASE": BASE, "API_KEY": "***"},
        "problem": None,
    }
    everything = [
        api.get(EVENTS, params={"limit": 500}).text,
        api.get(HOOKS).text,
        api.get("/api/v1/containers/e2e/proxy/catalog").text,
        api.get("/api/v1/containers/e2e/proxy/stats").text,
        api.get("/healthz").text,
        proxy.output(),
    ]
    for text in everything:
        assert SECRET not in text and OTHER_SECRET not in text


def test_the_file_keeps_the_reference_never_the_value(proxy: Mitmdump, api: httpx.Client, home: Path) -> None:
    only_hook(api, "/env_echo.py")  # a write: the store rewrites the file
    stored = json.loads((home / "e2e.json").read_text())
    assert stored["environments"] == ENVIRONMENTS
    assert SECRET not in (home / "e2e.json").read_text()


def test_an_undefined_environment_is_a_422_naming_it(api: httpx.Client) -> None:
    url = f"{HOOKS}/auth"
    etag = api.get(url).headers["ETag"]
    response = api.post(url, json=hook("/x", "/env_echo.py", environment="prod"), headers={"If-Match": etag})
    assert response.status_code == 422, response.text
    details = response.json()["details"]
    assert details == [
        {
            "field": "environment",
            "reason": "environment 'prod' is not defined (defined: default, staging); add it under "
            "'environments' or leave 'environment' out for 'default'",
        }
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("PATH", "'PATH' is reserved"),
        ("NODE_OPTIONS", "'NODE_OPTIONS' is reserved"),
        ("LD_PRELOAD", "'LD_PRELOAD' is reserved"),
        ("api_key", "must be 1-128 upper-case letters"),
    ],
)
def test_variable_names_are_checked(tmp_path: Path, upstream: Upstream, name: str, reason: str) -> None:
    shutil.copytree(SCRIPTS, tmp_path / "scripts")
    path = write_json(tmp_path / "e2e.json", container_doc(upstream, environments={"default": {name: "x"}}))
    result = run_check(path)
    assert result.returncode == 1
    assert f"{path}: environments.default.{name}: " in result.stdout and reason in result.stdout


def run_check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*proxy_hooks_command(), "check", str(path)], capture_output=True, text=True, timeout=30, env=env
    )


def test_an_unset_from_env_is_a_check_error_naming_it(tmp_path: Path, upstream: Upstream) -> None:
    shutil.copytree(SCRIPTS, tmp_path / "scripts")
    path = write_json(tmp_path / "e2e.json", container_doc(upstream, environments=ENVIRONMENTS))
    unset = {k: v for k, v in os.environ.items() if k not in ("BILLING_KEY", "STAGING_BILLING_KEY")}
    result = run_check(path, env=unset)
    assert result.returncode == 1
    for var, source in (("default.API_KEY", "BILLING_KEY"), ("staging.API_KEY", "STAGING_BILLING_KEY")):
        assert (
            f"{path}: environments.{var}.from_env: {var.split('.')[1]} reads the proxy's environment "
            f"variable {source!r}, which is not set" in result.stdout
        ), result.stdout
    assert run_check(path, env={**unset, "BILLING_KEY": "a", "STAGING_BILLING_KEY": "b"}).returncode == 0


def test_an_unset_from_env_keeps_a_reload_out(proxy: Mitmdump, api: httpx.Client, home: Path) -> None:
    path = home / "e2e.json"
    original = path.read_text()
    doc = json.loads(original)
    doc["environments"]["default"]["EXTRA"] = {"from_env": "NOT_SET_ANYWHERE"}
    try:
        path.write_text(json.dumps(doc))
        wait_for(
            lambda: any(
                "NOT_SET_ANYWHERE" in e
                for e in api.get("/healthz").json()["data"]["containers"][0]["error"] or []
            ),
            10,
            "the refused reload",
        )
    finally:
        path.write_text(original)
    wait_for(
        lambda: api.get("/healthz").json()["data"]["containers"][0]["error"] is None,
        10,
        "the file valid again",
    )


def test_a_dry_run_takes_another_environment(api: httpx.Client) -> None:
    hook_id = only_hook(api, "/env_echo.py")
    url = f"{HOOKS}/auth/{hook_id}/test"
    own = api.post(url, json={"path": "/env/x"}).json()["data"]
    other = api.post(url, json={"path": "/env/x", "environment": "staging"}).json()["data"]
    assert json.loads(own["response"]["body"])["api_base"] == BASE
    assert json.loads(other["response"]["body"])["api_base"] == STAGING_BASE
    assert other["stderr"] == "key=***" and OTHER_SECRET not in json.dumps(other)
    missing = api.post(url, json={"path": "/env/x", "environment": "prod"})
    assert missing.status_code == 422 and "environment 'prod' is not defined" in missing.text


def test_captured_exchanges_mask_from_env_values(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream
) -> None:
    """A hook that adds credentials from its environment and captures its exchanges: the upstream
    gets the real key; the stored exchange and the HAR export show "***" wherever it was
    (header, query, body, and the upstream's answer echoing the query)."""
    hook_id = only_hook(api, "/env_inject.py", capture={"redact": []})
    marker = uuid.uuid4().hex
    with proxy.client() as http:
        response = http.post(f"http://auth.test/env/{marker}", content=b"original")
    assert response.status_code == 200, response.text
    [seen] = upstream.seen(marker)
    assert seen["headers"]["x-api-key"] == SECRET and seen["body"] == f"token={SECRET}"
    assert seen["path"] == f"/env/{marker}?key={SECRET}"

    def captured() -> dict[str, Any] | None:
        events = api.get(EVENTS, params={"hookId": hook_id}).json()["data"]["events"]
        mine = [e for e in events if marker in e["path"]]
        return mine[0] if mine else None

    event = wait_for(captured, 10, "the capturing hook's event")
    exchange = api.get(f"{EVENTS}/{event['id']}/exchange").json()["data"]["exchange"]
    request = exchange["request"]
    assert dict((k.lower(), v) for k, v in request["headers"])["x-api-key"] == "***"
    assert request["url"].endswith(f"/env/{marker}?key=***")
    assert request["body"] == "token=***"
    har = api.get(f"{EVENTS}.har", params={"hookId": hook_id}).text
    for text in (json.dumps(exchange), har):
        assert SECRET not in text and "***" in text
