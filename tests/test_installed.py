"""Hooks through proxy-hooks as users install it: the built wheel, non-editable, in a venv of its
own (`make test` builds and installs it and names it in PROXY_HOOKS_WHEEL_VENV). A file missing
from the wheel (addon/hosts/ once was) fails every hook here, which an editable install hides."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Installed, Mitmdump, Upstream, hook, set_hooks
from tests.proxy_fixtures import installed_proxy, upstream  # noqa: F401 - fixture

WHEEL_VENV = os.environ.get("PROXY_HOOKS_WHEEL_VENV")
pytestmark = pytest.mark.skipif(
    not WHEEL_VENV,
    reason="needs the built wheel installed in a venv of its own: `make test` builds it and sets "
    "PROXY_HOOKS_WHEEL_VENV",
)
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
TSX_BIN = Path(__file__).resolve().parents[1] / "var" / "node" / "node_modules" / ".bin"  # make installs it


@pytest.fixture(scope="module")
def installed() -> Installed:
    """`mitmdump -s "$(proxy-hooks addon-path)"` of the venv the wheel was pip-installed into."""
    assert WHEEL_VENV is not None
    installation = Installed(Path(WHEEL_VENV) / "bin")
    # The addon it runs is the installed package's, not this checkout's.
    assert installation.addon.is_relative_to(WHEEL_VENV), installation.addon
    assert "site-packages" in installation.addon.parts
    return installation


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, installed: Installed
) -> Iterator[Mitmdump]:
    # tsx on PATH, as `npm install -g tsx` puts it: an installed proxy has no checkout's var/node.
    path = f"{TSX_BIN}:{os.environ.get('PATH', '')}"
    process = installed_proxy(tmp_path_factory, upstream, installed, env={"PATH": path})
    yield process
    process.stop()


@pytest.mark.parametrize(
    ("script", "runtime"),
    [
        ("/act.py", "python"),
        pytest.param("/act.js", "node", marks=needs_node),
        pytest.param("/typed.ts", "typescript", marks=needs_node),
        ("/act.sh", "bash"),
    ],
)
def test_a_per_run_hook_runs_from_the_wheel(proxy: Mitmdump, script: str, runtime: str) -> None:
    with proxy.api() as api:
        set_hooks(api, "e2e", "auth", [hook("/installed/**", script)])
    with proxy.client() as http:
        response = http.get("http://auth.test/installed/x", headers={"x-act": "respond"})
    assert response.status_code == 418, response.text
    assert response.headers["x-mock"] == runtime


@pytest.mark.parametrize(
    ("script", "lang"), [("/session.py", "python"), pytest.param("/session.js", "node", marks=needs_node)]
)
def test_an_exec_session_runs_from_the_wheel(proxy: Mitmdump, script: str, lang: str) -> None:
    spec = hook("/installed/**", script)
    spec["script"]["execId"] = f"installed-{lang}"
    with proxy.api() as api:
        set_hooks(api, "e2e", "auth", [spec])
    with proxy.client() as http:
        response = http.get("http://auth.test/installed/x", headers={"x-act": "whoami"})
    assert response.status_code == 200, response.text
    assert response.json()["lang"] == lang


def test_the_installed_api_serves(proxy: Mitmdump) -> None:
    with httpx.Client(base_url=proxy.api_url, timeout=30) as api:
        assert api.get("/healthz").json()["data"]["status"] == "ok"
