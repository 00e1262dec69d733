"""Explain a match: over the API and offline, the same answer, the reasons word for word."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import proxy_hooks_command, reset_container

MATCH = "/api/v1/containers/demo/proxy/match"


def hook(n: int, **match: Any) -> dict[str, Any]:
    extra = match.pop("extra", {})
    return {"id": f"01hz8x9k2b3c4d5e6f7g8h9j{n:02d}", "match": {"method": "*", "path": "/**", **match},
            "script": {"path": "/x.py"}, **extra}  # fmt: skip


@pytest.fixture
def explained(api_home: Path) -> Path:
    from tests.conftest import demo

    doc = demo(hooks={"auth": [
        hook(0, method=["GET"], path="/v1/login"),
        hook(1, path="/v1/*", headers={"x-tenant": "acme"}, extra={"applies_to": {"groups": ["admins"]}}),
        hook(2, method="POST", path="/v1/login"),
        hook(3, path="/v1/**", extra={"enabled": False}),
    ], "billing": []})  # fmt: skip
    return reset_container(api_home / "demo.json", doc)


def cli(config: Path, url: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [*proxy_hooks_command(), "explain", "--config", str(config), "--url", url, *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_winner_is_the_third_with_every_reason(client: httpx.Client, explained: Path) -> None:
    # 10.9.9.9 is in no group (the demo's admins are 127.0.0.1/32, user alice or x-role: admin).
    body = {
        "host": "auth.demo.test",
        "method": "POST",
        "path": "/v1/login?x=1",
        "client": {"address": "10.9.9.9"},
    }
    response = client.post(MATCH, json=body)
    assert response.status_code == 200 and response.json()["message"] == "Match explained"
    data = response.json()["data"]
    assert data["service"] == "auth" and data["upstream"] == "http://127.0.0.1:9001"
    assert data["winner"] == {"id": "01hz8x9k2b3c4d5e6f7g8h9j02", "position": 2}
    assert [(h["position"], h["matched"], h["reached"], h["reasons"]) for h in data["hooks"]] == [
        (0, False, True, ["method POST not in [GET]"]),
        (1, False, True, ["header x-tenant missing", "client not in groups [admins]"]),
        (2, True, True, []),
        (3, False, False, ["disabled"]),
    ]
    assert (
        cli(explained, "http://auth.demo.test/v1/login?x=1", "--method", "POST", "--client", "10.9.9.9")
        == data
    )


def test_winner_is_the_first(client: httpx.Client, explained: Path) -> None:
    data = client.post(MATCH, json={"host": "auth.demo.test", "path": "/v1/login"}).json()["data"]
    assert data["winner"] == {"id": "01hz8x9k2b3c4d5e6f7g8h9j00", "position": 0}
    assert [h["reached"] for h in data["hooks"]] == [True, False, False, False]
    assert cli(explained, "http://auth.demo.test/v1/login") == data


def test_no_winner_and_group_membership(client: httpx.Client, explained: Path) -> None:
    body = {"host": "auth.demo.test", "method": "PUT", "path": "/v1/users",
            "headers": {"X-Tenant": "other", "x-role": "admin"}}  # fmt: skip
    data = client.post(MATCH, json=body).json()["data"]
    assert data["winner"] is None and data["client"]["groups"] == ["admins"]
    assert data["hooks"][1]["reasons"] == ["header x-tenant is 'other', not 'acme'"]
    assert data["hooks"][2]["reasons"] == [
        "method PUT not in [POST]",
        "path /v1/users does not match /v1/login",
    ]
    args = ["--method", "PUT", "--header", "X-Tenant: other", "--header", "x-role:admin"]
    assert cli(explained, "http://auth.demo.test/v1/users", *args) == data


def test_no_service(client: httpx.Client, explained: Path) -> None:
    data = client.post(MATCH, json={"host": "nowhere.test:8080", "path": "/"}).json()["data"]
    assert data["service"] is None and data["winner"] is None and data["hooks"] == []
    assert data["reason"] == (
        "no service's hosts match nowhere.test, nowhere.test:8080 "
        "(hosts: auth: auth.demo.test; billing: billing.demo.test)"
    )
    assert cli(explained, "http://nowhere.test:8080/") == data


def test_bad_match_requests_are_422(client: httpx.Client, explained: Path) -> None:
    response = client.post(MATCH, json={"path": "nope", "colour": 1})
    assert response.status_code == 422 and response.json()["message"] == "Invalid match request"
    assert {d["field"] for d in response.json()["details"]} == {"host", "path", "colour"}
    assert client.post("/api/v1/containers/nope/proxy/match", json={"host": "x"}).status_code == 404


def test_list_containers(client: httpx.Client) -> None:
    data = client.get("/api/v1/containers").json()["data"]
    assert data["containers"] == [{
        "id": "demo", "file_version": 1, "etag": "file:v1", "services": 2, "hooks": 1,
        "hooksByService": {"auth": 1, "billing": 0}, "error": None,
    }]  # fmt: skip


def test_explain_canonicalizes_the_path_as_the_proxy_does(client: httpx.Client, explained: Path) -> None:
    """The hooks are walked on the canonical path; both forms are shown; what the proxy would
    refuse is said with its status, over the API and offline alike."""
    body = {"host": "auth.demo.test", "method": "GET", "path": "//v1/x/../%6cogin?a=%2F"}
    data = client.post(MATCH, json=body).json()["data"]
    assert data["path"] == {
        "as_sent": "//v1/x/../%6cogin?a=%2F",
        "canonical": "/v1/login",
        "forwarded": "/v1/login?a=%2F",
    }
    assert data["winner"] == {"id": "01hz8x9k2b3c4d5e6f7g8h9j00", "position": 0} and data["refused"] is None
    assert cli(explained, "http://auth.demo.test//v1/x/../%6cogin?a=%2F")["path"] == data["path"]

    refused = client.post(MATCH, json={**body, "path": "/v1%2Flogin"}).json()["data"]
    assert refused["refused"]["status"] == 400 and "encoded slash" in refused["refused"]["reason"]
    assert refused["service"] is None and refused["hooks"] == []
    decoded = cli(explained, "http://auth.demo.test/v1%2Flogin", "--encoded-slashes", "decode")
    assert decoded["path"]["canonical"] == "/v1/login" and decoded["winner"]["position"] == 0


def test_explain_says_when_host_names_disagree(client: httpx.Client, explained: Path) -> None:
    body = {"host": "auth.demo.test", "host_header": "billing.demo.test", "path": "/v1/login"}
    data = client.post(MATCH, json=body).json()["data"]
    assert data["refused"]["status"] == 421
    assert data["refused"]["services"] == {"destination": "demo/auth", "host": "demo/billing"}
    sni = cli(explained, "https://auth.demo.test/v1/login", "--sni", "billing.demo.test")
    assert sni["refused"]["status"] == 421 and sni["refused"]["services"]["sni"] == "demo/billing"
    overridden = client.post(
        MATCH, json={"host": "auth.demo.test", "method": "POST", "path": "/v1/login",
                     "headers": {"X-HTTP-Method-Override": "GET"}},
    ).json()["data"]  # fmt: skip
    assert overridden["winner"]["position"] == 0  # the GET-only hook holds for the override
