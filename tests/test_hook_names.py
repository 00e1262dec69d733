"""Named and versioned hooks through a real `proxy-hooks api`: a name is unique within the
container (422 naming both places, in the API and in `proxy-hooks check`), stands for the hook
wherever the API takes its id, and can never look like an id; `version` starts at 1 and goes up
by one when, and only when, the hook's content changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import demo, proxy_hooks_command, reset_container, write_scripts
from tests.harness import hook

BASE = "/api/v1/containers/demo/proxy/hooks"


def etag(client: httpx.Client) -> dict[str, str]:
    return {"If-Match": client.get(BASE).headers["ETag"]}


def create(client: httpx.Client, service: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{BASE}/{service}", json=body, headers=etag(client))
    assert response.status_code == 201, response.text
    return dict(response.json()["data"]["hook"])


@pytest.fixture
def scripts(container_file: Path) -> Path:
    write_scripts(container_file.parent / "scripts", "/a.py", "/b.py")
    return container_file


def test_a_name_is_shown_and_looked_up_like_an_id(client: httpx.Client, scripts: Path) -> None:
    made = create(client, "billing", hook("/pay", "/a.py", name="pay-guard"))
    assert made["name"] == "pay-guard"
    assert client.get(BASE).json()["data"]["hooks"]["billing"][0]["name"] == "pay-guard"
    by_name = client.get(f"{BASE}/billing/pay-guard")
    assert by_name.status_code == 200 and by_name.json()["data"]["hook"]["id"] == made["id"]
    catalog = client.get("/api/v1/containers/demo/proxy/catalog").json()["data"]["services"]["billing"]
    assert (catalog[0]["name"], catalog[0]["version"]) == ("pay-guard", 1)

    edited = client.patch(
        f"{BASE}/billing/pay-guard", json=hook("/pay/**", "/a.py", name="pay-guard"), headers=etag(client)
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["data"]["hook"]["id"] == made["id"]  # the same hook, not a new one
    assert client.get(f"{BASE}/billing/{made['id']}/runs").status_code == 200
    assert client.get(f"{BASE}/billing/pay-guard/runs").json()["data"]["hookId"] == made["id"]
    moved = client.patch(f"{BASE}/billing/pay-guard/position", json={"position": 0}, headers=etag(client))
    assert moved.status_code == 200, moved.text
    assert client.delete(f"{BASE}/billing/pay-guard", headers=etag(client)).status_code == 200
    assert client.get(f"{BASE}/billing/pay-guard").status_code == 404


def test_a_duplicate_name_is_422_naming_both_places(client: httpx.Client, scripts: Path) -> None:
    create(client, "auth", hook("/a", "/a.py", name="guard"))  # auth[1]
    before = scripts.read_text()
    response = client.post(
        f"{BASE}/billing", json={**hook("/b", "/b.py", name="guard"), "timeout": 0}, headers=etag(client)
    )
    assert response.status_code == 422
    details = response.json()["details"]
    assert [d["field"] for d in details] == ["name", "timeout"]  # every problem at once
    assert "hooks.auth[1]" in details[0]["reason"] and "unique within a container" in details[0]["reason"]

    response = client.put(
        f"{BASE}/billing",
        json={"hooks": [hook("/b", "/b.py", name="twin"), hook("/c", "/b.py", name="twin")]},
        headers=etag(client),
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "hooks[1].name"
    assert "hooks[0].name" in response.json()["details"][0]["reason"]
    assert scripts.read_text() == before  # nothing written


def test_replacing_a_service_may_reuse_its_own_names(client: httpx.Client, scripts: Path) -> None:
    create(client, "billing", hook("/b", "/b.py", name="keep"))
    response = client.put(
        f"{BASE}/billing", json={"hooks": [hook("/x", "/a.py", name="keep")]}, headers=etag(client)
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("01hz8x9k2b3c4d5e6f7g8h9j0z", "must not look like a hook id"),
        ("x" * 129, "must be 1-128 characters long"),
        ("", "must be 1-128 characters long"),
        ("a/b", "must be letters, digits"),
    ],
)
def test_bad_names_are_refused(client: httpx.Client, scripts: Path, name: str, why: str) -> None:
    response = client.post(f"{BASE}/billing", json=hook("/b", "/b.py", name=name), headers=etag(client))
    assert response.status_code == 422
    [detail] = response.json()["details"]
    assert detail["field"] == "name" and why in detail["reason"]


def test_version_goes_up_on_edit_and_not_on_a_move(client: httpx.Client, scripts: Path) -> None:
    first = create(client, "billing", hook("/one", "/a.py"))
    second = create(client, "billing", hook("/two", "/a.py"))
    assert (first["version"], second["version"]) == (1, 1)
    on_disk = json.loads(scripts.read_text())["hooks"]["billing"]
    assert [h["version"] for h in on_disk] == [1, 1]

    url = f"{BASE}/billing/{first['id']}"
    edited = client.patch(url, json={**hook("/one", "/b.py"), "version": 99}, headers=etag(client))
    assert edited.json()["data"]["hook"]["version"] == 2  # an echoed version is ignored
    same = client.patch(url, json=hook("/one", "/b.py"), headers=etag(client)).json()["data"]["hook"]
    assert same["version"] == 2 and same["updated_at"] == edited.json()["data"]["hook"]["updated_at"]
    moved = client.patch(f"{url}/position", json={"position": 1}, headers=etag(client))
    assert moved.json()["data"]["hook"]["version"] == 2

    listed = client.get(f"{BASE}/billing").json()["data"]["hooks"]
    # The whole list put back with the second hook edited: only that one goes up.
    listed[1] = {**listed[1], "timeout": 1234}
    replaced = client.put(f"{BASE}/billing", json={"hooks": listed}, headers=etag(client)).json()["data"]
    assert [(h["id"], h["version"]) for h in replaced["hooks"]] == [(second["id"], 1), (first["id"], 3)]


def test_a_hand_written_hook_without_version_reads_as_1(client: httpx.Client, container_file: Path) -> None:
    assert "version" not in json.loads(container_file.read_text())["hooks"]["auth"][0]
    assert client.get(BASE).json()["data"]["hooks"]["auth"][0]["version"] == 1


def test_check_reports_a_duplicate_name_in_a_file(tmp_path: Path) -> None:
    data = demo()
    data["hooks"]["auth"][0]["name"] = "login"
    data["hooks"]["billing"] = [hook("/pay", "/hooks/login-trace.js", name="login")]
    path = reset_container(tmp_path / "demo.json", data)
    result = subprocess.run(
        [*proxy_hooks_command(), "check", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "hooks.billing[0].name: duplicate of hooks.auth[0].name" in result.stdout + result.stderr
