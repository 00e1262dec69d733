"""The OpenAPI document: served, valid OpenAPI 3.1, and in step with the routes the app has."""

from __future__ import annotations

from pathlib import Path

import httpx
from openapi_spec_validator import validate

from addon.containers import Containers
from control_api.app import make_app
from control_api.openapi import build_document
from tests.conftest import write_container


def test_served_and_valid(client: httpx.Client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    app = make_app(Containers.load(write_container(tmp_path / "demo.json")))
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(m.upper(), path) for path, ops in build_document()["paths"].items() for m in ops}
    assert registered == documented


def test_the_seed_contract_is_in_the_document(client: httpx.Client) -> None:
    document = client.get("/api/v1/openapi.json").json()
    post = document["paths"]["/api/v1/containers/{id}/proxy/hooks/{service}"]["post"]
    assert {p["name"] for p in post["parameters"]} == {"id", "service", "If-Match"}
    assert set(post["responses"]) >= {"201", "404", "412", "422", "428"}
    envelope = post["responses"]["201"]["content"]["application/json"]["schema"]
    assert envelope["properties"]["message"] == {"const": "Hook created successfully"}
    assert "ETag" in post["responses"]["201"]["headers"] and "ETag" in post["responses"]["412"]["headers"]
    hook_create = document["components"]["schemas"]["HookCreate"]
    assert hook_create["additionalProperties"] is False
    timeout = hook_create["properties"]["timeout"]
    assert timeout["minimum"] == 1 and timeout["maximum"] == 30000
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["statusCode", "error", "message"]
