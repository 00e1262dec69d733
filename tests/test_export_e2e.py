"""A container kept in git, through real proxies: `proxy-hooks apply` from CI against a real
mitmdump's control API, then `proxy-hooks export` writes the WHOLE container back (services,
groups, environments with their `from_env` references, hooks) as a hooks file that `check`
accepts, that a second real mitmdump loads and enforces the same, and that applied back changes
nothing. `GET /api/v1/containers/{id}`, which export reads, never shows a `from_env` value."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon.model import HookReplace, HooksFile, HookSpec
from addon.versions import content
from tests.conftest import proxy_hooks_command
from tests.harness import Mitmdump, Upstream, hook, write_json
from tests.proxy_fixtures import api, home_with, upstream  # noqa: F401 - fixtures (with this module's proxy)

SCRIPTS = Path(__file__).parent / "scripts"
SECRET = "sk-export-5e1f-never-shown"
ENV = {"EXPORT_KEY": SECRET}
ENVIRONMENTS = {
    "default": {"API_BASE": "http://billing.internal:8080", "API_KEY": {"from_env": "EXPORT_KEY"}}
}
DOCUMENT = "/api/v1/containers/e2e"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Path:
    return home_with(tmp_path_factory, upstream, "export", environments=ENVIRONMENTS)


@pytest.fixture(scope="module")
def proxy(home: Path) -> Iterator[Mitmdump]:
    process = Mitmdump(home / "e2e.json", home / "confdir", env=ENV)
    yield process
    process.stop()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*proxy_hooks_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


# The file CI keeps: hooks only (the services, groups and environments are the server's).
KEPT = {
    "container": "e2e",
    "hooks": {
        "auth": [
            hook("/admin/**", "/act.py", name="admins-act", applies_to={"groups": ["admins"]}),
            hook("/env", "/env_echo.py", name="env-echo"),
        ],
        "billing": [hook("/pay", "/act.py", name="pay", failure_mode="open", timeout=2000)],
    },
}


def what_it_enforces(proxy: Mitmdump) -> dict[str, Any]:
    """The verdicts the proxy gives on the requests the kept hooks are about."""
    with proxy.client() as http:
        admin = http.get("http://auth.test/admin/x", headers={"x-role": "admin", "x-act": "block"})
        other = http.get("http://auth.test/admin/x", headers={"x-act": "block"})
        env = http.get("http://auth.test/env")
        pay = http.get("http://billing.test/pay", headers={"x-act": "block"})
    return {
        "admin": (admin.status_code, admin.json().get("reason")),
        "not an admin": (other.status_code, other.json().get("upstream")),
        "env": (env.status_code, env.json()),
        "pay": (pay.status_code, pay.json().get("reason")),
    }


def test_apply_from_ci_then_export_is_a_loadable_equivalent_file(
    proxy: Mitmdump, home: Path, tmp_path: Path
) -> None:
    kept = write_json(tmp_path / "kept.json", KEPT)
    applied = cli("apply", str(kept), "--api", proxy.api_url)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[-1] == "applied: file:v1 → file:v2"

    exported = home / "exported.json"  # beside the served file: the same scripts folder
    result = cli("export", "--api", proxy.api_url, "-o", str(exported))
    assert result.returncode == 0, result.stderr
    text = exported.read_text()
    assert SECRET not in text and SECRET not in result.stderr
    document = json.loads(text)
    served = json.loads((home / "e2e.json").read_text())
    # The whole container, as the served file holds it: loadable, and the same document.
    assert list(document) == [
        "container", "file_version", "scripts_dir", "services", "groups", "environments", "hooks"
    ]  # fmt: skip
    assert document["environments"] == ENVIRONMENTS  # the reference, as written
    assert (document["services"], document["groups"]) == (served["services"], served["groups"])
    assert HooksFile.model_validate(document) == HooksFile.model_validate(served)
    # The kept hooks, field for field, with what the server minted (ids, versions, timestamps).
    for service, hooks in KEPT["hooks"].items():
        theirs = document["hooks"][service]
        assert [content(HookSpec.model_validate(h)) for h in hooks] == [
            content(HookReplace.model_validate(h)) for h in theirs
        ]
        assert [h["name"] for h in theirs] == [h["name"] for h in hooks]
        assert all(h["id"] and h["version"] == 1 and "position" not in h for h in theirs)

    checked = cli("check", str(exported), env=ENV)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    again = cli("apply", str(exported), "--api", proxy.api_url)
    assert again.returncode == 0, again.stderr
    assert "auth: unchanged" in again.stdout and "billing: unchanged" in again.stdout
    assert again.stdout.splitlines()[-1] == "nothing to apply"
    assert json.loads((home / "e2e.json").read_text())["file_version"] == 2

    # A proxy loaded with the exported file alone enforces what the first one does.
    folder = tmp_path / "restored"
    shutil.copytree(SCRIPTS, folder / "scripts")
    shutil.copy(exported, folder / "e2e.json")
    second = Mitmdump(folder / "e2e.json", folder / "confdir", env=ENV)
    try:
        restored = what_it_enforces(second)
    finally:
        second.stop()
    original = what_it_enforces(proxy)
    assert restored == original
    assert original["admin"] == (403, "blocked by python")
    assert original["not an admin"] == (200, True)  # the group is exported with the hook
    assert original["pay"] == (403, "blocked by python")
    status, body = original["env"]
    secret_digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert (status, body["api_base"], body["api_key_sha256"]) == (
        200, "http://billing.internal:8080", secret_digest
    )  # fmt: skip


def test_the_container_document_shows_from_env_as_a_reference(api: httpx.Client) -> None:
    response = api.get(DOCUMENT)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert response.headers["ETag"] == data["etag"] == f"file:v{data['file_version']}"
    assert data["environments"]["default"]["API_KEY"] == {"from_env": "EXPORT_KEY"}
    assert SECRET not in response.text
    assert set(data["services"]) == {"auth", "billing"} and "admins" in data["groups"]
    head = api.head(DOCUMENT)
    assert (head.status_code, head.headers["ETag"]) == (200, data["etag"])


def test_an_unknown_container_is_a_404_naming_it(api: httpx.Client) -> None:
    response = api.get("/api/v1/containers/nope")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "NOT_FOUND"
    assert body["details"] == [{"field": "id", "reason": "container 'nope' (served: e2e)"}]
