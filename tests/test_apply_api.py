"""Whole-container writes through a real `proxy-hooks api`: PUT …/proxy/hooks applies every listed
service in one version (prune empties the rest) and reports what changed per service; PATCH
…/proxy/hooks is seed 002's bulk upsert, all items or none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import hook

BASE = "/api/v1/containers/demo/proxy/hooks"
SEED_ID = "01hz8x9k2b3c4d5e6f7g8h9j0k"
SERVER_SET = {"id", "position", "version", "created_at", "updated_at"}


@pytest.fixture
def scripts(container_file: Path) -> Path:
    folder = container_file.parent / "scripts"
    for name in ("a.py", "b.py"):
        (folder / name).write_text("")
    return container_file


def listed(client: httpx.Client) -> tuple[dict[str, list[dict[str, Any]]], str]:
    response = client.get(BASE)
    return response.json()["data"]["hooks"], response.headers["ETag"]


def independent_diff(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What changed, computed here from two listings, not by the server's code."""

    def body(view: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in view.items() if k not in SERVER_SET}

    old = {h["id"]: body(h) for h in before}
    new = {h["id"]: body(h) for h in after}
    return {
        "added": [i for i in new if i not in old],
        "updated": [i for i in new if i in old and old[i] != new[i]],
        "removed": [i for i in old if i not in new],
        "unchanged": [i for i in new if i in old and old[i] == new[i]],
    }


def test_a_multi_service_apply_is_one_version_with_exact_counts(client: httpx.Client, scripts: Path) -> None:
    before, etag = listed(client)
    seed = before["auth"][0]
    body = {
        "hooks": {
            "auth": [hook("/new", "/a.py", name="fresh"), {**seed, "timeout": 777}],
            "billing": [hook("/pay", "/b.py")],
        }
    }
    response = client.put(BASE, json=body, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["file_version"] == 2 and response.headers["ETag"] == "file:v2"  # one version for both
    after, _ = listed(client)
    for service in ("auth", "billing"):
        assert data["services"][service] == independent_diff(before[service], after[service])
    assert data["services"]["auth"]["updated"] == [SEED_ID]
    assert [h["version"] for h in after["auth"]] == [1, 2]
    assert json.loads(scripts.read_text())["file_version"] == 2

    # The same again: nothing changed, every id unchanged, versions kept.
    again = client.put(BASE, json={"hooks": after}, headers={"If-Match": "file:v2"}).json()["data"]
    assert again["services"]["auth"] == {
        "added": [], "updated": [], "removed": [], "unchanged": [h["id"] for h in after["auth"]]
    }  # fmt: skip
    assert [h["version"] for h in again["hooks"]["auth"]] == [1, 2]


def test_a_stale_if_match_changes_nothing(client: httpx.Client, scripts: Path) -> None:
    before = scripts.read_text()
    response = client.put(BASE, json={"hooks": {"billing": []}}, headers={"If-Match": "file:v7"})
    assert response.status_code == 412
    assert client.put(BASE, json={"hooks": {"billing": []}}).status_code == 428
    assert scripts.read_text() == before


def test_prune_empties_the_services_left_out(client: httpx.Client, scripts: Path) -> None:
    kept = client.put(
        BASE, json={"hooks": {"billing": [hook("/p", "/b.py")]}}, headers={"If-Match": "file:v1"}
    )
    assert kept.status_code == 200 and "auth" not in kept.json()["data"]["services"]
    assert listed(client)[0]["auth"][0]["id"] == SEED_ID  # left out, kept

    pruned = client.put(
        BASE,
        json={"hooks": {"billing": [hook("/p", "/b.py")]}, "prune": True},
        headers={"If-Match": "file:v2"},
    )
    assert pruned.status_code == 200, pruned.text
    assert pruned.json()["data"]["services"]["auth"]["removed"] == [SEED_ID]
    assert listed(client)[0]["auth"] == []


def test_every_problem_of_an_apply_at_once(client: httpx.Client, scripts: Path) -> None:
    before = scripts.read_text()
    body = {
        "hooks": {
            "auth": [hook("/a", "/a.py"), hook("/b", "/a.py"), hook("/c", "/missing.py")],
            "billing": [{**hook("/d", "/b.py"), "timeout": 0}],
            "logs": [],
            "nope": [],
        }
    }
    response = client.put(BASE, json=body, headers={"If-Match": "file:v1"})
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["details"]]
    assert fields == ["hooks.auth[2].script.path", "hooks.billing[0].timeout", "hooks.logs", "hooks.nope"]
    assert scripts.read_text() == before


def test_bulk_upsert_creates_and_updates_by_id_or_name_in_one_version(
    client: httpx.Client, scripts: Path
) -> None:
    made = client.post(
        f"{BASE}/billing", json=hook("/x", "/b.py", name="named"), headers={"If-Match": "file:v1"}
    )
    named_id = made.json()["data"]["hook"]["id"]
    items = [
        {"service": "auth", "hook": hook("/new", "/a.py")},
        {"service": "billing", "hook": hook("/x2", "/b.py", name="named")},
        {"service": "auth", "hook": {**hook("/v1/login", "/a.py"), "id": SEED_ID}},
    ]
    response = client.patch(BASE, json={"items": items}, headers={"If-Match": "file:v2"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["success"], data["failed"], data["file_version"]) == (3, 0, 3)
    assert [r["action"] for r in data["results"]] == ["created", "updated", "updated"]
    assert data["results"][1]["hook_id"] == named_id and data["results"][2]["hook_id"] == SEED_ID
    hooks, _ = listed(client)
    assert [h["match"]["path"] for h in hooks["auth"]] == ["/v1/login", "/new"]
    assert hooks["billing"][0]["match"]["path"] == "/x2"


def test_bulk_upsert_with_one_bad_item_writes_nothing(client: httpx.Client, scripts: Path) -> None:
    before = scripts.read_text()
    items = [
        {"service": "auth", "hook": hook("/ok", "/a.py")},
        {"service": "billing", "hook": hook("/ok", "/b.py")},
        {"service": "auth", "hook": hook("/ok2", "/a.py")},
        {"service": "billing", "hook": hook("no-slash", "/b.py")},
    ]
    response = client.patch(BASE, json={"items": items}, headers={"If-Match": "file:v1"})
    assert response.status_code == 422
    body = response.json()
    assert [d["field"] for d in body["details"]] == ["items[3].hook.match.path"]
    assert (body["data"]["success"], body["data"]["failed"]) == (0, 1)
    assert [r["action"] for r in body["data"]["results"]] == ["skipped", "skipped", "skipped", "failed"]
    assert "must start with '/'" in body["data"]["results"][3]["error"]
    assert scripts.read_text() == before
