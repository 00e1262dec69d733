"""The eight endpoints of seed 000 (and the bulk PUT) against a real `proxy-hooks api` process:
the seed's envelopes, messages and status codes, word for word."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DEMO, reset_container, write_scripts

BASE = "/api/v1/containers/demo/proxy/hooks"
SEED_ID = "01hz8x9k2b3c4d5e6f7g8h9j0k"
ULID_RE = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")
ISO_Z_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# The seed's request body for POST/PATCH.
SEED_BODY: dict[str, Any] = {
    "match": {"method": "POST", "path": "/v1/login", "headers": {"x-tenant": "acme"}},
    "script": {
        "subdomain": "hooks",
        "execId": "exec_01hz8x9k2b3c4d5e6f7g8h9j0k",
        "path": "/hooks/login-trace.js",
    },
    "timeout": 5000,
    "applies_to": {"groups": ["admins"]},
}
DEFAULTS = {"enabled": True, "failure_mode": "closed", "mode": "sync"}
SEED_HOOK_VIEW = {
    "id": SEED_ID,
    "position": 0,
    **DEMO["hooks"]["auth"][0],
    **DEFAULTS,
}
NOT_FOUND = {"statusCode": 404, "error": "Not Found", "message": "Resource not found", "code": "NOT_FOUND"}


def not_found(field: str, reason: str) -> dict[str, Any]:
    """The seed's 404 body, with `details` naming what is missing."""
    return {**NOT_FOUND, "details": [{"field": field, "reason": reason}]}


REQUIRED = {
    "statusCode": 428,
    "error": "Precondition Required",
    "message": "If-Match header required for this operation",
    "code": "PRECONDITION_REQUIRED",
}
MISMATCH = {
    "statusCode": 412,
    "error": "Precondition Failed",
    "message": "etag_mismatch",
    "code": "PRECONDITION_FAILED",
}


def v(n: int) -> dict[str, str]:
    return {"If-Match": f"file:v{n}"}


def created_view(body: dict[str, Any], data: dict[str, Any], position: int) -> dict[str, Any]:
    """What the API must answer for a created hook whose server-set fields are in `data`."""
    hook = data["hook"]
    assert ULID_RE.match(hook["id"]), hook["id"]
    assert ISO_Z_RE.match(hook["created_at"]) and ISO_Z_RE.match(hook["updated_at"])
    view = {"id": hook["id"], "position": position, **DEFAULTS, **body}
    view["created_at"], view["updated_at"] = hook["created_at"], hook["updated_at"]
    view["match"] = {"headers": {}, **view["match"]}
    return view


def on_disk(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# The scripts this module's hooks run: the API accepts a hook only if its script is there.
SCRIPTS = ("/a.py", "/hooks/a.py", "/hooks/other.sh", "/x.py", "/n.py")


@pytest.fixture
def container_file(api_home: Path) -> Path:
    """The demo's file, fresh, with this module's scripts deployed."""
    path = reset_container(api_home / "demo.json")
    write_scripts(path.parent / "scripts", *SCRIPTS)
    return path


def details(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert body["statusCode"] == 422 and body["error"] == "Validation Error"
    assert body["message"] == "Invalid hook" and body["code"] == "VALIDATION_ERROR"
    return {d["field"]: d["reason"] for d in body["details"]}


# --- success cases, with the seed's exact envelopes ---


def test_list_container_hooks(client: httpx.Client) -> None:
    response = client.get(BASE)
    assert response.status_code == 200
    assert response.headers["ETag"] == "file:v1"
    assert response.json() == {
        "statusCode": 200,
        "message": "Proxy hooks listed successfully",
        "data": {"hooks": {"auth": [SEED_HOOK_VIEW], "billing": []}, "file_version": 1, "etag": "file:v1"},
    }


def test_list_service_hooks(client: httpx.Client) -> None:
    response = client.get(f"{BASE}/auth")
    assert response.status_code == 200
    assert response.headers["ETag"] == "file:v1"
    assert response.json() == {
        "statusCode": 200,
        "message": "Service hooks listed successfully",
        "data": {"service": "auth", "hooks": [SEED_HOOK_VIEW], "file_version": 1, "etag": "file:v1"},
    }
    empty = client.get(f"{BASE}/billing").json()
    assert empty["data"]["hooks"] == []


def test_get_hook(client: httpx.Client) -> None:
    response = client.get(f"{BASE}/auth/{SEED_ID}")
    assert response.status_code == 200
    assert response.headers["ETag"] == "file:v1"
    assert response.json() == {
        "statusCode": 200,
        "message": "Hook retrieved successfully",
        "data": {"hook": SEED_HOOK_VIEW, "file_version": 1, "etag": "file:v1"},
    }


def test_create_appends_and_writes_the_file(client: httpx.Client, container_file: Path) -> None:
    response = client.post(f"{BASE}/auth", json=SEED_BODY, headers=v(1))
    assert response.status_code == 201
    assert response.headers["ETag"] == "file:v2"
    body = response.json()
    data = body["data"]
    assert body == {
        "statusCode": 201,
        "message": "Hook created successfully",
        "data": {"hook": created_view(SEED_BODY, data, 1), "file_version": 2, "etag": "file:v2"},
    }
    saved = on_disk(container_file)
    assert saved["file_version"] == 2
    assert [h["id"] for h in saved["hooks"]["auth"]] == [SEED_ID, data["hook"]["id"]]


def test_create_inserts_at_position(client: httpx.Client) -> None:
    minimal = {"match": {"method": "GET", "path": "/health"}, "script": {"path": "/hooks/a.py"}}
    response = client.post(f"{BASE}/auth", json={**minimal, "position": 0}, headers=v(1))
    assert response.status_code == 201
    new_id = response.json()["data"]["hook"]["id"]
    assert response.json()["data"]["hook"]["position"] == 0
    listed = client.get(f"{BASE}/auth").json()["data"]["hooks"]
    assert [(h["id"], h["position"]) for h in listed] == [(new_id, 0), (SEED_ID, 1)]
    # Inserting at len(hooks) appends.
    response = client.post(f"{BASE}/auth", json={**minimal, "position": 2}, headers=v(2))
    assert response.status_code == 201 and response.json()["data"]["hook"]["position"] == 2


def test_create_normalises_method_case(client: httpx.Client) -> None:
    body = {"match": {"method": ["get", "Post"], "path": "/x"}, "script": {"path": "/a.py"}}
    response = client.post(f"{BASE}/billing", json=body, headers=v(1))
    assert response.status_code == 201
    assert response.json()["data"]["hook"]["match"]["method"] == ["GET", "POST"]


def test_replace_keeps_id_position_and_created_at(client: httpx.Client, container_file: Path) -> None:
    created = client.post(f"{BASE}/auth", json=SEED_BODY, headers=v(1)).json()["data"]["hook"]
    replacement = {
        "match": {"method": "*", "path": "/v2/**"},
        "script": {"path": "/hooks/other.sh"},
        "failure_mode": "open",
        "description": "replaced",
    }
    response = client.patch(f"{BASE}/auth/{created['id']}", json=replacement, headers=v(2))
    assert response.status_code == 200
    assert response.headers["ETag"] == "file:v3"
    body = response.json()
    hook = body["data"]["hook"]
    assert body["message"] == "Hook updated successfully"
    assert body["data"]["file_version"] == 3 and body["data"]["etag"] == "file:v3"
    assert hook == {
        "id": created["id"],
        "position": 1,
        "match": {"method": "*", "path": "/v2/**", "headers": {}},
        "script": {"path": "/hooks/other.sh"},
        "timeout": 5000,
        "enabled": True,
        "failure_mode": "open",
        "mode": "sync",
        "description": "replaced",
        "created_at": created["created_at"],
        "updated_at": hook["updated_at"],
    }
    assert hook["updated_at"] >= created["updated_at"]
    # Full replace: nothing of the old hook survives (applies_to is gone from the file too).
    assert "applies_to" not in on_disk(container_file)["hooks"]["auth"][1]


def test_replace_accepts_its_own_id_and_position_echoed(client: httpx.Client) -> None:
    current = client.get(f"{BASE}/auth/{SEED_ID}").json()["data"]["hook"]
    echoed = {**current, "description": "edited from a GET"}
    response = client.patch(f"{BASE}/auth/{SEED_ID}", json=echoed, headers=v(1))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["hook"]["description"] == "edited from a GET"


def test_replace_rejects_another_id_or_position(client: httpx.Client) -> None:
    body = {**SEED_BODY, "id": "01hz8x9k2b3c4d5e6f7g8h9j0m", "position": 3}
    response = client.patch(f"{BASE}/auth/{SEED_ID}", json=body, headers=v(1))
    assert response.status_code == 422
    problems = details(response)
    assert set(problems) == {"id", "position"}
    assert "ids never change" in problems["id"]
    assert "PATCH …/position" in problems["position"]


def _three_hooks(client: httpx.Client) -> list[str]:
    ids = [SEED_ID]
    for n, path in enumerate(["/b", "/c"], start=1):
        body = {"match": {"method": "GET", "path": path}, "script": {"path": "/x.py"}}
        ids.append(client.post(f"{BASE}/auth", json=body, headers=v(n)).json()["data"]["hook"]["id"])
    return ids


def test_move_hook(client: httpx.Client) -> None:
    first, second, third = _three_hooks(client)
    response = client.patch(f"{BASE}/auth/{first}/position", json={"position": 2}, headers=v(3))
    assert response.status_code == 200
    assert response.headers["ETag"] == "file:v4"
    body = response.json()
    assert body["statusCode"] == 200 and body["message"] == "Hook moved successfully"
    assert body["data"]["hook"] == {**SEED_HOOK_VIEW, "position": 2}
    assert body["data"]["file_version"] == 4 and body["data"]["etag"] == "file:v4"
    listed = client.get(f"{BASE}/auth").json()["data"]["hooks"]
    assert [(h["id"], h["position"]) for h in listed] == [(second, 0), (third, 1), (first, 2)]


def test_move_out_of_range_is_422(client: httpx.Client) -> None:
    _three_hooks(client)
    response = client.patch(f"{BASE}/auth/{SEED_ID}/position", json={"position": 3}, headers=v(3))
    assert response.status_code == 422
    assert details(response) == {"position": "must be 0-2 to move within a list of 3 hooks, got 3"}
    for bad in ({"position": -1}, {"position": "1"}, {}, {"position": 1, "extra": True}):
        assert client.patch(f"{BASE}/auth/{SEED_ID}/position", json=bad, headers=v(3)).status_code == 422


def test_clear_service(client: httpx.Client, container_file: Path) -> None:
    _three_hooks(client)
    response = client.delete(f"{BASE}/auth", headers=v(3))
    assert response.status_code == 200
    assert response.headers["ETag"] == "file:v4"
    assert response.json() == {
        "statusCode": 200,
        "message": "Service hooks cleared",
        "data": {"removed": 3, "file_version": 4, "etag": "file:v4"},
    }
    assert client.get(f"{BASE}/auth").json()["data"]["hooks"] == []
    assert on_disk(container_file)["hooks"]["auth"] == []


def test_delete_hook(client: httpx.Client) -> None:
    response = client.delete(f"{BASE}/auth/{SEED_ID}", headers=v(1))
    assert response.status_code == 200
    assert response.headers["ETag"] == "file:v2"
    assert response.json() == {
        "statusCode": 200,
        "message": "Hook removed successfully",
        "data": {"file_version": 2, "etag": "file:v2"},
    }
    assert client.get(f"{BASE}/auth/{SEED_ID}").status_code == 404


def test_bulk_replace_keeps_given_ids_and_mints_the_rest(client: httpx.Client) -> None:
    keep = client.get(f"{BASE}/auth/{SEED_ID}").json()["data"]["hook"]
    fresh = {"match": {"method": "GET", "path": "/new"}, "script": {"path": "/n.py"}}
    response = client.put(f"{BASE}/auth", json={"hooks": [fresh, keep]}, headers=v(1))
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == "file:v2"
    body = response.json()
    assert body["message"] == "Service hooks replaced"
    hooks = body["data"]["hooks"]
    assert ULID_RE.match(hooks[0]["id"]) and hooks[0]["id"] != SEED_ID
    assert [(h["id"], h["position"]) for h in hooks][1] == (SEED_ID, 1)
    assert client.get(f"{BASE}/auth").json()["data"]["hooks"] == hooks


def test_bulk_replace_rejects_duplicates_and_bad_items_whole(
    client: httpx.Client, container_file: Path
) -> None:
    item = {"id": SEED_ID, "match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}}
    bad_group = {**item, "id": None, "applies_to": {"groups": ["nobody"]}}
    del bad_group["id"]
    response = client.put(f"{BASE}/auth", json={"hooks": [item, item, bad_group]}, headers=v(1))
    assert response.status_code == 422
    problems = details(response)
    assert "hooks[2].applies_to.groups[0]" in problems
    response = client.put(f"{BASE}/auth", json={"hooks": [item, item]}, headers=v(1))
    assert details(response) == {"hooks[1].id": "duplicate of hooks[0].id"}
    assert on_disk(container_file)["file_version"] == 1  # nothing written


# --- 404 ---

HOOK_ROUTES = [
    ("GET", "{base}"),
    ("GET", "{base}/{service}"),
    ("POST", "{base}/{service}"),
    ("PUT", "{base}/{service}"),
    ("DELETE", "{base}/{service}"),
    ("GET", "{base}/{service}/{hook}"),
    ("PATCH", "{base}/{service}/{hook}"),
    ("DELETE", "{base}/{service}/{hook}"),
    ("PATCH", "{base}/{service}/{hook}/position"),
]


@pytest.mark.parametrize(("method", "route"), HOOK_ROUTES)
def test_unknown_container_is_404(client: httpx.Client, method: str, route: str) -> None:
    url = route.format(base="/api/v1/containers/nope/proxy/hooks", service="auth", hook=SEED_ID)
    response = client.request(method, url, json=SEED_BODY, headers=v(1))
    assert response.status_code == 404
    assert response.json() == not_found("id", "container 'nope' (served: demo)")
    assert "ETag" not in response.headers


@pytest.mark.parametrize("service", ["logs", "proxy", "workspaces", "undefined"])
@pytest.mark.parametrize(("method", "route"), HOOK_ROUTES[1:])
def test_reject_listed_and_unknown_services_are_404(
    client: httpx.Client, method: str, route: str, service: str
) -> None:
    url = route.format(base=BASE, service=service, hook=SEED_ID)
    response = client.request(method, url, json=SEED_BODY, headers=v(1))
    assert response.status_code == 404
    if service == "undefined":
        assert response.json() == not_found("service", "service 'undefined' (defined: auth, billing)")
    else:
        reason = f"service '{service}' is reject-listed (logs, proxy, workspaces): it has no hooks"
        assert response.json() == not_found("service", reason)
    assert response.headers["ETag"] == "file:v1"


def test_a_reject_listed_services_run_history_is_404(client: httpx.Client) -> None:
    response = client.get(f"/api/v1/containers/demo/proxy/hooks/proxy/{SEED_ID}/runs")
    reason = "service 'proxy' is reject-listed (logs, proxy, workspaces): it has no hooks"
    assert response.status_code == 404 and response.json() == not_found("service", reason)


@pytest.mark.parametrize(("method", "route"), HOOK_ROUTES[5:])
def test_unknown_hook_is_404(client: httpx.Client, method: str, route: str) -> None:
    for hook in ("01hz8x9k2b3c4d5e6f7g8h9j0m", "not-a-ulid"):
        url = route.format(base=BASE, service="auth", hook=hook)
        response = client.request(method, url, json={"position": 0}, headers=v(1))
        assert response.status_code == 404
        assert response.json() == not_found("hookId", f"hook '{hook}' in service 'auth'")


def test_unknown_route_and_method_use_the_envelope(client: httpx.Client) -> None:
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404 and response.json() == not_found(
        "path", "no route GET /api/v1/nothing"
    )
    response = client.post(f"{BASE}")
    assert response.status_code == 405
    assert response.json()["statusCode"] == 405 and response.json()["error"] == "Method Not Allowed"


# --- 428, 412 and the order of checks ---

WRITES = [
    ("POST", f"{BASE}/auth", SEED_BODY),
    ("PUT", f"{BASE}/auth", {"hooks": []}),
    ("DELETE", f"{BASE}/auth", None),
    ("PATCH", f"{BASE}/auth/{SEED_ID}", SEED_BODY),
    ("DELETE", f"{BASE}/auth/{SEED_ID}", None),
    ("PATCH", f"{BASE}/auth/{SEED_ID}/position", {"position": 0}),
]


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_writes_require_if_match(client: httpx.Client, method: str, url: str, body: Any) -> None:
    response = client.request(method, url, json=body)
    assert response.status_code == 428
    assert response.json() == REQUIRED
    assert response.headers["ETag"] == "file:v1"


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_stale_if_match_is_412(
    client: httpx.Client, container_file: Path, method: str, url: str, body: Any
) -> None:
    for stale in ("file:v0", '"file:v2"', "garbage", "**"):
        response = client.request(method, url, json=body, headers={"If-Match": stale})
        assert response.status_code == 412, stale
        assert response.json() == MISMATCH
        assert response.headers["ETag"] == "file:v1"
    assert on_disk(container_file)["file_version"] == 1


@pytest.mark.parametrize("form", ["file:v1", '"file:v1"', 'W/"file:v1"', 'file:v7, "file:v1"', "*"])
def test_if_match_quoted_bare_or_listed(client: httpx.Client, form: str) -> None:
    response = client.delete(f"{BASE}/auth/{SEED_ID}", headers={"If-Match": form})
    assert response.status_code == 200


def test_order_of_checks_is_404_428_412_422(client: httpx.Client) -> None:
    bad_body = {"match": {"method": "FETCH", "path": "x"}}
    # unknown service beats a missing If-Match
    assert client.post(f"{BASE}/nope", json=bad_body).status_code == 404
    # a missing If-Match beats a bad body
    assert client.post(f"{BASE}/auth", json=bad_body).status_code == 428
    # a stale If-Match beats a bad body
    assert client.post(f"{BASE}/auth", json=bad_body, headers=v(9)).status_code == 412
    # and with everything else right, the body is judged
    assert client.post(f"{BASE}/auth", json=bad_body, headers=v(1)).status_code == 422


# --- 422: every class of bad body ---

BAD_BODIES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown field", {**SEED_BODY, "colour": "red"}, "colour", "unknown field (allowed: match, script,"),
    (
        "unknown nested field",
        {**SEED_BODY, "match": {**SEED_BODY["match"], "query": "x"}},
        "match.query",
        "unknown field",
    ),
    (
        "method outside the list",
        {**SEED_BODY, "match": {"method": "TRACE", "path": "/a"}},
        "match.method",
        "must be '*' or one of GET",
    ),
    (
        "method list with a bad one",
        {**SEED_BODY, "match": {"method": ["GET", 7], "path": "/a"}},
        "match.method",
        "got 7",
    ),
    (
        "empty method list",
        {**SEED_BODY, "match": {"method": [], "path": "/a"}},
        "match.method",
        "at least one",
    ),
    (
        "path without slash",
        {**SEED_BODY, "match": {"method": "GET", "path": "v1"}},
        "match.path",
        "must start with '/'",
    ),
    (
        "path too long",
        {**SEED_BODY, "match": {"method": "GET", "path": "/" + "a" * 257}},
        "match.path",
        "at most 257 characters, got 258",
    ),
    (
        "header value not a string",
        {**SEED_BODY, "match": {"method": "GET", "path": "/a", "headers": {"x": 1}}},
        "match.headers.x",
        "string",
    ),
    ("missing match", {"script": {"path": "/a.py"}}, "match", "required field is missing"),
    ("missing script path", {**SEED_BODY, "script": {}}, "script.path", "required field is missing"),
    ("timeout zero", {**SEED_BODY, "timeout": 0}, "timeout", "must be 1-30000 ms, got 0"),
    ("timeout too big", {**SEED_BODY, "timeout": 30001}, "timeout", "must be 1-30000 ms, got 30001"),
    ("timeout a string", {**SEED_BODY, "timeout": "5000"}, "timeout", "must be an integer, got '5000'"),
    ("timeout a float", {**SEED_BODY, "timeout": 5000.5}, "timeout", "must be an integer, got 5000.5"),
    ("timeout a bool", {**SEED_BODY, "timeout": True}, "timeout", "must be an integer, got true"),
    ("groups empty", {**SEED_BODY, "applies_to": {"groups": []}}, "applies_to.groups", "at least 1"),
    (
        "group undefined",
        {**SEED_BODY, "applies_to": {"groups": ["admins", "ghosts"]}},
        "applies_to.groups[1]",
        "group 'ghosts' is not defined in container 'demo' (defined: admins, sre)",
    ),
    (
        "script escapes",
        {**SEED_BODY, "script": {"path": "/hooks/../../etc/passwd"}},
        "script.path",
        "must stay inside the scripts folder",
    ),
    ("position negative", {**SEED_BODY, "position": -1}, "position", "must be at least 0, got -1"),
    (
        "position past the end",
        {**SEED_BODY, "position": 2},
        "position",
        "must be 0-1 to insert into a list of 1 hooks, got 2",
    ),
    ("failure_mode unknown", {**SEED_BODY, "failure_mode": "maybe"}, "failure_mode", "'closed' or 'open'"),
    ("id in a create", {**SEED_BODY, "id": SEED_ID}, "id", "unknown field"),
]


@pytest.mark.parametrize(("case", "body", "field", "reason"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_invalid_bodies_are_422_with_details(
    client: httpx.Client, container_file: Path, case: str, body: dict[str, Any], field: str, reason: str
) -> None:
    response = client.post(f"{BASE}/auth", json=body, headers=v(1))
    assert response.status_code == 422, response.text
    assert response.headers["ETag"] == "file:v1"
    problems = details(response)
    assert field in problems, problems
    assert reason in problems[field]
    assert on_disk(container_file)["file_version"] == 1


def test_malformed_and_non_object_json_are_422(client: httpx.Client) -> None:
    headers = {**v(1), "Content-Type": "application/json"}
    response = client.post(f"{BASE}/auth", content=b"{not json", headers=headers)
    assert response.status_code == 422
    assert details(response)["body"].startswith("malformed JSON")
    response = client.post(f"{BASE}/auth", content=b"[1, 2]", headers=headers)
    assert details(response) == {"body": "must be a JSON object, got list"}


def test_script_symlink_out_of_the_scripts_folder_is_422(
    client: httpx.Client, container_file: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, container_file.parent / "scripts" / "hooks" / "escape")
    body = {**SEED_BODY, "script": {"path": "/hooks/escape/evil.py"}}
    response = client.post(f"{BASE}/auth", json=body, headers=v(1))
    assert response.status_code == 422
    assert "outside the scripts folder" in details(response)["script.path"]


def test_oversized_body_is_413_in_the_envelope(client: httpx.Client, container_file: Path) -> None:
    huge = {**SEED_BODY, "description": "x" * (1024 * 1024 + 10)}
    response = client.post(f"{BASE}/auth", json=huge, headers=v(1))
    assert response.status_code == 413
    body = response.json()
    assert body["statusCode"] == 413 and body["code"] == "PAYLOAD_TOO_LARGE"
    assert on_disk(container_file)["file_version"] == 1


def test_versions_go_up_by_one_per_write(client: httpx.Client, container_file: Path) -> None:
    body = {"match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}}
    for version in range(1, 6):
        response = client.post(f"{BASE}/billing", json=body, headers=v(version))
        assert response.json()["data"]["file_version"] == version + 1
        assert on_disk(container_file)["file_version"] == version + 1
    # A failed write does not use a version up.
    assert client.post(f"{BASE}/billing", json={}, headers=v(6)).status_code == 422
    assert client.post(f"{BASE}/billing", json=body, headers=v(6)).json()["data"]["etag"] == "file:v7"


def test_healthz_lists_containers_and_versions(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "ok"
    assert data["containers"] == [
        {"id": "demo", "file": "demo.json", "file_version": 1, "etag": "file:v1", "error": None}
    ]
