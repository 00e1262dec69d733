"""The demo `make run` serves: configs/ with its six hooks in four languages, each doing what
the README's curl line promises. Runs on a copy whose upstream ports are free ones."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.demo_run import CONFIGS, DemoServices
from tests.harness import Mitmdump, wait_for


@pytest.fixture(scope="module")
def demo_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mitmdump]:
    home = tmp_path_factory.mktemp("demo")
    services = DemoServices(home / "configs")
    proxy = Mitmdump(services.config, home / "confdir")
    yield proxy
    proxy.stop()
    services.stop()


@pytest.fixture
def client(demo_proxy: Mitmdump) -> Iterator[httpx.Client]:
    with demo_proxy.client() as http:
        yield http


def test_python_trace_lets_admin_logins_through(client: httpx.Client, demo_proxy: Mitmdump) -> None:
    response = client.post("http://auth.demo.test/v1/login", headers={"x-tenant": "acme", "x-role": "admin"})
    assert response.status_code == 200 and response.json()["service"] == "auth"
    assert response.headers["x-proxy-hooks-hook"] == "01jd2x9k2b3c4d5e6f7g8h9j0k"
    wait_for(lambda: "login attempt: POST /v1/login" in demo_proxy.output(), 10, "the trace in the log")


def test_javascript_adds_a_header(client: httpx.Client) -> None:
    echoed = client.get("http://auth.demo.test/v1/profile").json()
    assert echoed["headers"]["x-demo-hook"] == "add-header.js saw GET /v1/profile"


def test_typescript_refuses_a_bad_profile_and_passes_a_good_one(client: httpx.Client) -> None:
    refused = client.put("http://auth.demo.test/v1/profile", json={"email": "nobody"})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "email must be an address like name@example.com",
        "got": "nobody",
        "checked_by": "check-profile.ts",
    }
    passed = client.put("http://auth.demo.test/v1/profile", json={"email": "ada@example.com"})
    assert passed.status_code == 200 and passed.json()["service"] == "auth"
    assert json.loads(passed.json()["body"]) == {"email": "ada@example.com"}


def test_bash_blocks_deletes(client: httpx.Client) -> None:
    response = client.delete("http://auth.demo.test/v1/users/42")
    assert response.status_code == 403
    assert response.json()["reason"] == "deleting users is disabled in the demo"


def test_python_mocks_an_invoice(client: httpx.Client) -> None:
    response = client.get("http://billing.demo.test/v1/invoices/demo")
    assert response.json() == {"id": "demo", "amount": 42, "currency": "EUR", "mocked_by": "mock-invoice.py"}


def test_javascript_edits_the_response(client: httpx.Client) -> None:
    response = client.get("http://billing.demo.test/v1/invoices")
    assert response.headers["x-demo-edited"] == "edit-response.js"
    body = response.json()
    assert body["edited_by"] == "edit-response.js" and body["original"]["service"] == "billing"


def test_readme_shows_each_demo_line() -> None:
    readme = (CONFIGS.parent / "README.md").read_text()
    lines = re.findall(r"curl -s -x http://127\.0\.0\.1:8080 .*", readme)
    for path in ("/v1/login", "/v1/profile", "/v1/users/42", "/v1/invoices/demo", "/v1/invoices "):
        assert any(path in line for line in lines), path
    assert any("-X PUT" in line and "/v1/profile" in line for line in lines)
    demo = json.loads((CONFIGS / "demo.json").read_text())
    assert sum(len(hooks) for hooks in demo["hooks"].values()) == 6
