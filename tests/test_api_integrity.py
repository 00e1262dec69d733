"""The control API against a real `proxy-hooks api` process: every problem of a body or a query
in one 422 (issue 11, item 3), scripts that must exist (item 4), and reject-listed services a
container declares (item 7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DEMO, ApiProcess, demo, reset_container, write_container, write_scripts

BASE = "/api/v1/containers/demo/proxy"
HOOKS = f"{BASE}/hooks"
SEED_ID = DEMO["hooks"]["auth"][0]["id"]
OTHER_ID = "01hz8x9k2b3c4d5e6f7g8h9j1m"
RESERVED_404 = "service '{}' is reject-listed (logs, proxy, workspaces): it has no hooks"


def v(n: int) -> dict[str, str]:
    return {"If-Match": f"file:v{n}"}


def details(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    found = {d["field"]: d["reason"] for d in body["details"]}
    assert len(found) == len(body["details"]), body  # one detail per field here
    return found


def hook(path: str = "/a", script: str = "/hooks/a.py", **extra: Any) -> dict[str, Any]:
    return {"match": {"method": "GET", "path": path}, "script": {"path": script}, **extra}


def missing(script: str) -> str:
    return (
        f"no script {script} in the scripts folder (scripts/): deploy the file there first, or fix the path"
    )


@pytest.fixture
def deployed(container_file: Path) -> Path:
    """The demo's file with /hooks/a.py deployed; the scripts folder is returned."""
    scripts = container_file.parent / "scripts"
    write_scripts(scripts, "/hooks/a.py")
    return scripts


def hand_write(client: httpx.Client, container_file: Path, doc: dict[str, Any]) -> int:
    """Put a hand-written file in place; the version the API serves it as."""
    reset_container(container_file, doc)
    return int(client.get(HOOKS).headers["ETag"].removeprefix("file:v"))


# --- item 3: everything at once ---


def test_a_body_with_three_problems_gets_three_details(client: httpx.Client, deployed: Path) -> None:
    body = {**hook(script="/hooks/nope.py"), "timeout": 0, "applies_to": {"groups": ["ghosts"]}}
    assert details(client.post(f"{HOOKS}/auth", json=body, headers=v(1))) == {
        "applies_to.groups[0]": "group 'ghosts' is not defined in container 'demo' (defined: admins, sre); "
        "add it under 'groups' first",
        "script.path": missing("/hooks/nope.py"),
        "timeout": "must be 1-30000 ms, got 0",
    }


def test_position_and_fields_are_judged_together(client: httpx.Client, deployed: Path) -> None:
    body = {**hook(), "position": 5, "mode": "later"}
    assert details(client.post(f"{HOOKS}/auth", json=body, headers=v(1))) == {
        "mode": "must be 'sync' or 'async', got 'later'",
        "position": "must be 0-1 to insert into a list of 1 hooks, got 5",
    }


def test_a_replace_reports_echoes_fields_and_refs_at_once(client: httpx.Client, deployed: Path) -> None:
    body = {
        **hook(),
        "id": OTHER_ID,
        "position": 3,
        "match": {"method": "FETCH", "path": "/a"},
        "applies_to": {"groups": ["ghosts"]},
    }
    problems = details(client.patch(f"{HOOKS}/auth/{SEED_ID}", json=body, headers=v(1)))
    assert sorted(problems) == ["applies_to.groups[0]", "id", "match.method", "position"]


def test_a_bulk_write_reports_every_item(client: httpx.Client, deployed: Path) -> None:
    items = [hook(id=OTHER_ID), hook(id=OTHER_ID, timeout=-5), hook(script="/hooks/nope.py"), "x"]
    problems = details(client.put(f"{HOOKS}/auth", json={"hooks": items}, headers=v(1)))
    assert problems == {
        "hooks[1].id": "duplicate of hooks[0].id",
        "hooks[1].timeout": "must be 1-30000 ms, got -5",
        "hooks[2].script.path": missing("/hooks/nope.py"),
        "hooks[3]": "must be a JSON object, got 'x'",
    }


def test_a_query_with_three_bad_parameters_reports_three(client: httpx.Client) -> None:
    response = client.get(f"{BASE}/events?limit=501&blocked=maybe&foo=1")
    body = response.json()
    assert response.status_code == 422 and body["message"] == "Invalid query", body
    assert body["details"] == [
        {"field": "blocked", "reason": "must be true or false, got 'maybe'"},
        {
            "field": "foo",
            "reason": "unknown parameter (allowed: blocked, changed, cursor, hookId, instance, kind, limit, "
            "outcome, service, since, until)",
        },
        {"field": "limit", "reason": "must be 1-500, got '501'"},
    ]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("events/stream?limit=5&since=noon&outcome=nah", ["limit", "outcome[0]", "since"]),
        ("hooks/auth/x/runs?last=0&outcome=nah&foo=1", ["foo", "last", "outcome[0]"]),
        ("stats?period=1y&foo=1&foo=2", ["foo", "period"]),
        ("events?limit=1&limit=2&kind=nope", ["kind[0]", "limit"]),
    ],
)
def test_every_endpoint_reports_every_bad_parameter(
    client: httpx.Client, query: str, fields: list[str]
) -> None:
    response = client.get(f"{BASE}/{query}")
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["details"]] == fields


# --- item 4: scripts must exist ---


def test_a_hook_whose_script_is_missing_is_refused_until_it_is_deployed(
    client: httpx.Client, container_file: Path
) -> None:
    assert details(client.post(f"{HOOKS}/auth", json=hook(), headers=v(1))) == {
        "script.path": missing("/hooks/a.py")
    }
    assert json.loads(container_file.read_text())["file_version"] == 1  # nothing written
    write_scripts(container_file.parent / "scripts", "/hooks/a.py")
    assert client.post(f"{HOOKS}/auth", json=hook(), headers=v(1)).status_code == 201


def test_a_folder_is_not_a_script(client: httpx.Client, container_file: Path) -> None:
    (container_file.parent / "scripts" / "hooks" / "dir.py").mkdir()
    problems = details(client.post(f"{HOOKS}/auth", json=hook(script="/hooks/dir.py"), headers=v(1)))
    assert problems == {"script.path": missing("/hooks/dir.py")}


@pytest.mark.parametrize(
    ("name", "source", "accepted"),
    [
        ("s.py", "def handle(event):\n    return None\n", True),
        ("s.py", "print('no handle here')\n", False),
        ("s.js", "exports.handle = async () => null;\n", True),
        ("s.js", "module.exports = {};\n", False),
    ],
)
def test_an_exec_session_script_must_define_handle(
    client: httpx.Client, container_file: Path, name: str, source: str, accepted: bool
) -> None:
    write_scripts(container_file.parent / "scripts", f"/hooks/{name}", source=source)
    body = hook(script=f"/hooks/{name}")
    body["script"]["execId"] = "sess"
    response = client.post(f"{HOOKS}/auth", json=body, headers=v(1))
    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert (
            "has no" in details(response)["script.path"]
            and "handle(event)" in details(response)["script.path"]
        )
    # Without execId the same script runs one process per run: no handle needed.
    del body["script"]["execId"]
    assert client.post(f"{HOOKS}/billing", json=body, headers=v(2 if accepted else 1)).status_code == 201


def test_every_write_of_a_hook_checks_its_script(client: httpx.Client, deployed: Path) -> None:
    created = client.post(f"{HOOKS}/auth", json=hook(), headers=v(1)).json()["data"]["hook"]
    patched = client.patch(f"{HOOKS}/auth/{created['id']}", json=hook(script="/hooks/b.py"), headers=v(2))
    assert details(patched) == {"script.path": missing("/hooks/b.py")}
    bulk = client.put(f"{HOOKS}/auth", json={"hooks": [created, hook(script="/hooks/b.py")]}, headers=v(2))
    assert details(bulk) == {"hooks[1].script.path": missing("/hooks/b.py")}
    # The script goes away: moving its hook (a write of it) is refused, deleting it is not.
    (deployed / "hooks" / "a.py").unlink()
    moved = client.patch(f"{HOOKS}/auth/{created['id']}/position", json={"position": 0}, headers=v(2))
    assert details(moved) == {"script.path": missing("/hooks/a.py")}
    assert client.delete(f"{HOOKS}/auth/{created['id']}", headers=v(2)).status_code == 200


def test_a_hand_written_hook_without_its_script_loads_and_degrades_health(
    client: httpx.Client, container_file: Path
) -> None:
    doc = demo(
        hooks={
            "auth": [DEMO["hooks"]["auth"][0], {**hook(script="/hooks/gone.py"), "id": OTHER_ID}],
            "billing": [hook(script="/hooks/off.py", enabled=False)],
        }
    )
    version = hand_write(client, container_file, doc)
    listed = client.get(f"{HOOKS}/auth").json()["data"]["hooks"]
    assert [h["id"] for h in listed] == [SEED_ID, OTHER_ID]  # the file loaded
    health = client.get("/healthz").json()["data"]
    assert health["status"] == "degraded"
    assert health["containers"][0]["error"] is None
    # Only the enabled hook counts: a disabled one never runs.
    assert health["reasons"] == [
        f"demo/auth hook {OTHER_ID} (position 1): script file not found: /hooks/gone.py (scripts folder "
        "scripts/); the flows it matches fail closed (502) until it is fixed"
    ]
    # Writes that do not touch that hook go through; deploying the script makes health ok.
    write_scripts(container_file.parent / "scripts", "/hooks/a.py")
    assert client.post(f"{HOOKS}/auth", json=hook(), headers=v(version)).status_code == 201
    write_scripts(container_file.parent / "scripts", "/hooks/gone.py")
    health = client.get("/healthz").json()["data"]
    assert health["status"] == "ok" and health["reasons"] == []


@pytest.fixture(scope="module")
def inline_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    folder = tmp_path_factory.mktemp("inline")
    doc = demo(hooks={"auth": [{**hook(script="/hooks/not-yet.py"), "id": OTHER_ID}], "billing": []})
    process = ApiProcess(write_container(folder / "demo.json", doc), "--allow-inline-scripts")
    yield process
    process.stop()


def test_a_hook_without_its_script_can_still_be_dry_run_inline(inline_api: ApiProcess) -> None:
    """Trying the script out before deploying it (hooks_allow_inline_scripts) is not a write."""
    source = (
        "import json, sys\njson.load(sys.stdin)\nprint(json.dumps({'block': True, 'reason': 'inline'}))\n"
    )
    with inline_api.client() as http:
        response = http.post(
            f"{HOOKS}/auth/{OTHER_ID}/test",
            json={"path": "/a", "script_inline": {"language": "python", "source": source}},
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["outcome"] == "blocked"


# --- item 7: reject-listed services may be declared ---

DECLARED = {**DEMO["services"], "logs": {"hosts": ["logs.demo.test"]}, "proxy": {}, "workspaces": {}}


def test_declared_reject_listed_services_are_404_for_every_verb(
    client: httpx.Client, container_file: Path
) -> None:
    version = hand_write(client, container_file, demo(services=DECLARED))
    assert client.get("/healthz").json()["data"]["containers"][0]["error"] is None
    for service in ("logs", "proxy", "workspaces"):
        expected = [{"field": "service", "reason": RESERVED_404.format(service)}]
        for method, url, body in [
            ("GET", f"{HOOKS}/{service}", None),
            ("POST", f"{HOOKS}/{service}", hook()),
            ("PUT", f"{HOOKS}/{service}", {"hooks": []}),
            ("DELETE", f"{HOOKS}/{service}", None),
            ("GET", f"{HOOKS}/{service}/{SEED_ID}", None),
            ("PATCH", f"{HOOKS}/{service}/{SEED_ID}", hook()),
            ("DELETE", f"{HOOKS}/{service}/{SEED_ID}", None),
            ("PATCH", f"{HOOKS}/{service}/{SEED_ID}/position", {"position": 0}),
            ("POST", f"{HOOKS}/{service}/{SEED_ID}/test", {}),
            ("GET", f"{HOOKS}/{service}/{SEED_ID}/runs", None),
        ]:
            response = client.request(method, url, json=body, headers=v(version))
            assert response.status_code == 404, (method, url, response.text)
            assert response.json()["details"] == expected, (method, url)
    # The matcher says what the proxy does with their flows.
    explained = client.post(f"{BASE}/match", json={"host": "logs.demo.test", "path": "/a/../%2F"}).json()[
        "data"
    ]
    assert (explained["service"], explained["hooks"], explained["refused"], explained["path"]) == (
        "logs",
        [],
        None,
        None,
    )
    assert explained["reason"] == (
        "service 'logs' is reject-listed (logs, proxy, workspaces): its flows pass untouched, without hooks"
    )
    # Nor are they listed where hooks are.
    assert set(client.get(HOOKS).json()["data"]["hooks"]) == {"auth", "billing"}
    assert set(client.get(f"{BASE}/catalog").json()["data"]["services"]) == {"auth", "billing"}
    summary = client.get("/api/v1/containers").json()["data"]["containers"][0]
    assert set(summary["hooksByService"]) == {"auth", "billing"} and summary["services"] == 5


def test_a_hook_under_a_reject_listed_service_is_refused_in_a_file(
    client: httpx.Client, container_file: Path
) -> None:
    version = hand_write(client, container_file, demo(services=DECLARED))
    doc = demo(services=DECLARED, hooks={**DEMO["hooks"], "logs": [hook(script="/hooks/login-trace.js")]})
    container_file.write_text(json.dumps(doc))  # a hand edit of the live file
    health = client.get("/healthz").json()["data"]
    assert health["containers"][0]["error"] == [
        "hooks.logs: service 'logs' is reject-listed (logs, proxy, workspaces): it may be declared under "
        "'services', but it never has hooks (its flows pass untouched); remove the 1 hook listed here"
    ]
    assert client.get(HOOKS).headers["ETag"] == f"file:v{version}"  # the last good version stays
