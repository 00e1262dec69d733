"""The dashboard's files as the control API serves them (no browser): every asset in the
package and nothing from another origin, a Content-Security-Policy without inline scripts, and
the door's rules — the static files need no token, but nothing else becomes reachable without one,
and the Host and Origin checks hold for them too."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from control_api.ui_routes import UI_DIR, assets
from tests.conftest import ApiProcess, write_container

TOKEN = "ui-test-token"


@pytest.fixture(scope="module")
def token_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    api = ApiProcess(write_container(tmp_path_factory.mktemp("ui") / "demo.json"), "--token", TOKEN)
    yield api
    api.stop()


def test_the_page_and_each_file_it_loads_are_served_without_a_token(token_api: ApiProcess) -> None:
    with httpx.Client(base_url=token_api.url) as http:
        page = http.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        referenced = re.findall(r'(?:src|href)="(?!data:)([^"]+)"', page.text)
        assert "app.js" in referenced and "vendor/uPlot.iife.min.js" in referenced
        modules = ["app.js", *(f"{name}" for name in assets() if name.endswith(".js"))]
        for name in [*referenced, *modules]:
            answer = http.get(f"/ui/{name}")
            assert answer.status_code == 200, name
            assert answer.headers["content-type"].split(";")[0] in ("text/javascript", "text/css"), name
        assert http.get("/api/v1/containers").status_code == 401  # the data still needs the token
        assert http.get("/healthz").status_code == 401


def test_every_ui_answer_carries_a_policy_without_inline_scripts(token_api: ApiProcess) -> None:
    with httpx.Client(base_url=token_api.url) as http:
        for path in ("/ui/", "/ui/app.js", "/ui/style.css"):
            headers = http.get(path).headers
            policy = dict(
                part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
            )
            assert policy["script-src"] == "'self'" and policy["default-src"] == "'none'"
            assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
            assert headers["x-content-type-options"] == "nosniff"


def test_no_file_loads_anything_from_another_origin_or_runs_inline_code() -> None:
    ours = [p for p in UI_DIR.glob("*") if p.is_file()]
    assert {p.name for p in ours} >= {"index.html", "app.js", "api.js", "style.css"}
    for path in ours:
        text = path.read_text()
        assert not re.search(r"(?:src|href|import[^;]*from)\s*=?\s*[\"']?(?:https?:)?//", text), path.name
        assert "eval(" not in text and "new Function" not in text, path.name
    html = (UI_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # every script is a file
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handler either


@pytest.mark.parametrize(
    "path",
    [
        "/ui/../api/v1/containers",
        "/ui/%2e%2e/api/v1/containers",
        "/ui/..%2fapi/v1/containers",
        "/ui/../healthz",
        "/ui//../healthz",
    ],
)
def test_a_ui_path_never_reaches_the_api_without_the_token(token_api: ApiProcess, path: str) -> None:
    with httpx.Client(base_url=token_api.url) as http:
        answer = http.send(http.build_request("GET", token_api.url + path))
        assert answer.status_code in (401, 404), (path, answer.status_code, answer.text[:200])
        assert "containers" not in answer.text or answer.json().get("code") in ("UNAUTHORIZED", "NOT_FOUND")


def test_unknown_files_are_404_in_the_envelope(token_api: ApiProcess) -> None:
    with httpx.Client(base_url=token_api.url) as http:
        for name in ("nope.js", "vendor", "vendor/", "app.js/x", "ui_routes.py"):
            answer = http.get(f"/ui/{name}")
            assert answer.status_code == 404, name
            assert answer.json()["code"] == "NOT_FOUND"


def test_the_door_still_checks_host_and_origin_for_the_page(token_api: ApiProcess) -> None:
    with httpx.Client(base_url=token_api.url) as http:
        assert http.get("/ui/", headers={"Host": "evil.example"}).status_code == 421
        assert http.get("/ui/app.js", headers={"Origin": "http://evil.example"}).status_code == 403
        assert http.get("/ui/app.js", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_the_root_sends_browsers_to_the_dashboard(token_api: ApiProcess) -> None:
    with httpx.Client(base_url=token_api.url) as http:
        browser = http.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        assert browser.status_code == 302 and browser.headers["location"] == "/ui/"
        links = http.get("/").json()["data"]["links"]
        assert links["dashboard"] == "/ui/" and links["openapi"] == "/api/v1/openapi.json"


def test_the_vendored_builds_are_the_pinned_ones_with_their_licenses() -> None:
    vendor = UI_DIR / "vendor"
    pinned = {}
    for line in (vendor / "VERSIONS").read_text().splitlines():
        if line and not line.startswith("#"):
            package, _, here, sha256 = line.split()
            pinned[here] = (package, sha256)
    shipped = {p.name for p in vendor.iterdir()} - {"VERSIONS"}
    assert shipped == set(pinned)
    for name, (_, sha256) in pinned.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == sha256, name
    assert {p for p, _ in pinned.values()} >= {"htm@3.1.1", "uplot@1.6.32"}
    assert {n for n in shipped if n.startswith("LICENSE.")} == {
        "LICENSE.htm.txt",
        "LICENSE.preact.txt",
        "LICENSE.uplot.txt",
    }
