"""The OpenAPI document: served, valid OpenAPI 3.1, in step with the routes the app has, and
named so that a generated client reads well (tests/test_generated_client.py generates one)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from openapi_spec_validator import validate

from addon.containers import Containers
from control_api.app import API_ROUTES, make_app
from control_api.openapi import build_document
from tests.conftest import ApiProcess, write_container

HOOKS = "/api/v1/containers/{id}/proxy/hooks"
# The seed's SDK names (client.api.proxyHooks.<name>) for its eight endpoints.
SEED_OPERATIONS = {
    ("get", HOOKS): "listContainerProxyHooks",
    ("get", HOOKS + "/{service}"): "listContainerProxyServiceHooks",
    ("get", HOOKS + "/{service}/{hookId}"): "getContainerProxyHook",
    ("post", HOOKS + "/{service}"): "addContainerProxyHook",
    ("patch", HOOKS + "/{service}/{hookId}"): "updateContainerProxyHook",
    ("patch", HOOKS + "/{service}/{hookId}/position"): "moveContainerProxyHook",
    ("delete", HOOKS + "/{service}"): "clearContainerProxyServiceHooks",
    ("delete", HOOKS + "/{service}/{hookId}"): "removeContainerProxyHook",
}


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, ops in document["paths"].items() for method, op in ops.items()}


def test_served_and_valid(client: httpx.Client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_route_served_is_documented_with_a_unique_operation_id(tmp_path: Path) -> None:
    """HEAD included: aiohttp serves it wherever GET is, so the document says so too."""
    app = make_app(Containers.load(write_container(tmp_path / "demo.json")))
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    operations = _operations(build_document(API_ROUTES))
    assert served == set(operations)
    assert ("head", HOOKS) in served
    ids = [op.get("operationId") for op in operations.values()]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", i) for i in ids), ids
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)


def test_the_seed_endpoints_carry_the_seed_sdk_names() -> None:
    operations = _operations(build_document(API_ROUTES))
    assert {key: operations[key]["operationId"] for key in SEED_OPERATIONS} == SEED_OPERATIONS
    assert {op["tags"][0] for key, op in operations.items() if key in SEED_OPERATIONS} == {"Proxy Hooks"}


def test_every_operation_has_one_tag_the_document_describes() -> None:
    document = build_document(API_ROUTES)
    described = {tag["name"]: tag["description"] for tag in document["tags"]}
    assert set(described) == {"Proxy Hooks", "Events", "Debugging", "Script Protocol", "Server"}
    assert all(described.values())
    for key, op in _operations(document).items():
        assert len(op["tags"]) == 1 and op["tags"][0] in described, key


def test_head_is_documented_as_the_get_without_a_body() -> None:
    operations = _operations(build_document(API_ROUTES))
    for (method, path), get in operations.items():
        if method != "get":
            continue
        head = operations[("head", path)]
        assert head["operationId"] == get["operationId"] + "Head"
        assert head["parameters"] == get["parameters"]
        assert set(head["responses"]) == set(get["responses"])
        for status, response in head["responses"].items():
            assert "content" not in response
            assert response.get("headers") == get["responses"][status].get("headers")


def test_several_outcomes_are_documented_repeated_or_comma_separated() -> None:
    operations = _operations(build_document(API_ROUTES))
    for path in ("/api/v1/containers/{id}/proxy/events", HOOKS + "/{service}/{hookId}/runs"):
        (outcome,) = [p for p in operations[("get", path)]["parameters"] if p["name"] == "outcome"]
        assert outcome["schema"]["type"] == "array" and outcome["explode"] is True
        assert "blocked" in outcome["schema"]["items"]["enum"]
        assert "comma-separated (outcome=a,b)" in outcome["description"], path


def test_head_answers_what_get_does_without_a_body(api: ApiProcess, container_file: Path) -> None:
    """Each on a kept-alive connection followed by a GET: a HEAD that wrote a body (the event
    stream did) would be read as the next answer."""
    proxy = "/api/v1/containers/demo/proxy"
    paths = ["/healthz", "/api/v1/openapi.json", "/api/v1/containers", f"{proxy}/hooks",
             f"{proxy}/hooks/auth", f"{proxy}/events?outcome=blocked,failed", f"{proxy}/events/stream",
             f"{proxy}/stats", f"{proxy}/catalog", f"{proxy}/hooks/nope"]  # fmt: skip
    with api.client() as http:
        for path in paths:
            head = http.head(path)
            assert head.content == b"", path
            if path.endswith("/stream"):
                assert head.status_code == 200 and head.headers["content-type"] == "text/event-stream"
                assert head.headers["etag"] == "file:v1"
            else:
                get = http.get(path)
                assert head.status_code == get.status_code, path
                assert head.headers.get("etag") == get.headers.get("etag"), path
            assert http.get("/healthz").json()["data"]["status"] == "ok", path


def test_the_seed_contract_is_in_the_document(client: httpx.Client) -> None:
    document = client.get("/api/v1/openapi.json").json()
    assert _operations(document) == _operations(build_document(API_ROUTES))
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


def _data_schema(operation: dict[str, Any], status: str = "200") -> str:
    """The name of the model a success envelope's `data` is."""
    envelope = operation["responses"][status]["content"]["application/json"]["schema"]
    return str(envelope["properties"]["data"]["$ref"]).rsplit("/", 1)[-1]


def _body_schema(operation: dict[str, Any]) -> str:
    return str(operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_issue_14s_endpoints_and_fields_are_all_in_the_document() -> None:
    """Apply, bulk upsert, the container document, notes, the protocol, catalog filters, the
    runs' `changed` filter; names, versions, `hook_version`, `changes`, notes' fields, stats'
    `eventsByKind`/`notes`/`recentClients`: each with its operationId, body, answer and ETag."""
    document = build_document(API_ROUTES)
    operations = _operations(document)
    schemas = document["components"]["schemas"]

    def props(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    expected = {
        ("get", "/api/v1/containers/{id}"): ("getContainer", None, "ContainerDocument"),
        ("put", HOOKS): ("applyContainerProxyHooks", "ContainerApply", "Applied"),
        ("patch", HOOKS): ("upsertContainerProxyHooks", "BulkUpsert", "Upserted"),
        ("post", "/api/v1/containers/{id}/proxy/events"): ("addContainerProxyEvent", "NoteCreate", "Event"),
        ("get", "/api/v1/protocol"): ("getProxyProtocol", None, "ProtocolDescription"),
    }
    for key, (operation_id, body, data) in expected.items():
        operation = operations[key]
        assert operation["operationId"] == operation_id
        success = "201" if key[0] == "post" else "200"
        assert _data_schema(operation, success) == data
        if body is not None:
            assert _body_schema(operation) == body
        if key[1].startswith("/api/v1/containers/"):
            assert "ETag" in operation["responses"][success]["headers"]
        if key[0] in ("put", "patch"):
            assert "If-Match" in {p["name"] for p in operation["parameters"]}
            assert {"404", "428", "412", "422"} <= set(operation["responses"])

    assert props("ContainerDocument") >= {
        "container", "file_version", "etag", "scripts_dir", "services", "groups", "environments", "hooks"
    }  # fmt: skip
    assert props("ContainerApply") == {"hooks", "prune"}
    assert props("Applied") >= {"services", "hooks", "etag"}
    assert props("ServiceChanges") == {"added", "updated", "removed", "unchanged"}
    assert props("BulkUpsert") == {"items"} and props("UpsertItem") == {"service", "hook"}
    assert props("Upserted") >= {"success", "failed", "results"}
    assert props("UpsertResult") >= {"action", "hook_id", "error"}
    assert "data" in props("ErrorBody")  # a refused batch still answers per item
    assert {"name", "version"} <= props("HookView") and "name" in props("HookCreate")
    assert {"hook_name", "hook_version", "changes", "message", "data"} <= props("Event")
    assert props("NoteCreate") == {"message", "service", "hookId", "data"}
    assert props("RunChanges") == {"request", "response"}
    assert {"eventsByKind", "notes", "recentClients"} <= props("Stats")
    assert props("RecentClient") >= {"address", "lastSeen"}
    assert {"name", "version"} <= props("CatalogEntry")
    catalog = operations[("get", "/api/v1/containers/{id}/proxy/catalog")]
    filters = {"service", "mode", "runtime", "enabled", "failure_mode"}
    assert {p["name"] for p in catalog["parameters"]} >= filters
    events, runs = (
        {p["name"]: p for p in operations[("get", path)]["parameters"]}
        for path in ("/api/v1/containers/{id}/proxy/events", HOOKS + "/{service}/{hookId}/runs")
    )
    assert runs["changed"] == events["changed"]  # one definition of the filter
    assert {"type": "boolean"} in runs["changed"]["schema"]["anyOf"]
