"""`proxy-hooks apply` and `export` as CI runs them: CLI subprocesses against a real
`proxy-hooks api` on loopback. The dry run's diff names each add, edit, move and removal and
writes nothing; the apply is one version; export round-trips to an equivalent file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ApiProcess, proxy_hooks_command
from tests.harness import hook

BASE = "/api/v1/containers/demo/proxy/hooks"
SEED_ID = "01hz8x9k2b3c4d5e6f7g8h9j0k"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*proxy_hooks_command(), *args], capture_output=True, text=True, timeout=60)


def seed_two(client: httpx.Client, folder: Path) -> list[dict[str, Any]]:
    """auth: the seed hook, then `second`, then `third`."""
    for name in ("a.py", "b.py"):
        (folder / "scripts" / name).write_text("")
    body = [
        client.get(f"{BASE}/auth").json()["data"]["hooks"][0],
        hook("/two", "/a.py", name="second"),
        hook("/three", "/a.py", name="third"),
    ]
    response = client.put(f"{BASE}/auth", json={"hooks": body}, headers={"If-Match": "file:v1"})
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["hooks"])


def desired(tmp_path: Path, hooks: list[dict[str, Any]]) -> Path:
    """The file kept in git: `third` moved first, the seed hook's timeout edited, `second` (kept
    by name only) left out, one new hook, and billing untouched."""
    seed, _, third = hooks
    wanted = {
        "container": "demo",
        "hooks": {
            "auth": [
                {"name": "third", "match": third["match"], "script": third["script"]},
                {**{k: v for k, v in seed.items() if k != "position"}, "timeout": 900},
                hook("/four", "/b.py", name="fourth"),
            ]
        },
    }
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(wanted))
    return path


def test_dry_run_prints_each_kind_of_change_and_writes_nothing(
    api: ApiProcess, client: httpx.Client, container_file: Path, tmp_path: Path
) -> None:
    hooks = seed_two(client, container_file.parent)
    before = container_file.read_text()
    result = cli("apply", str(desired(tmp_path, hooks)), "--api", api.url, "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "container demo at file:v2:" and lines[1] == "auth:"
    assert f"  ↕ move 'third' ({hooks[2]['id']}, * /three): position 2 → 0" in lines
    assert f"  ↕ move {SEED_ID} (POST /v1/login): position 0 → 1" in lines
    assert f"  ~ edit {SEED_ID} (POST /v1/login): timeout: 5000 → 900" in lines
    assert "  + add 'fourth' (new, * /four) at 2" in lines
    assert f"  - remove 'second' ({hooks[1]['id']}, * /two)" in lines
    assert lines[-1] == "dry run: nothing written"
    assert container_file.read_text() == before


def test_apply_then_export_round_trips(
    api: ApiProcess, client: httpx.Client, container_file: Path, tmp_path: Path
) -> None:
    hooks = seed_two(client, container_file.parent)
    wanted = desired(tmp_path, hooks)
    result = cli("apply", str(wanted), "--api", api.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "applied: file:v2 → file:v3"  # one version
    auth = client.get(f"{BASE}/auth").json()["data"]["hooks"]
    assert [h.get("name") for h in auth] == ["third", None, "fourth"]
    assert auth[0]["id"] == hooks[2]["id"]  # kept by name: edited in place, not replaced
    assert (auth[0]["version"], auth[1]["version"], auth[1]["timeout"]) == (1, 2, 900)

    exported = tmp_path / "exported.json"
    result = cli("export", "--api", api.url, "-o", str(exported))
    assert result.returncode == 0, result.stderr
    document = json.loads(exported.read_text())
    assert document["container"] == "demo" and document["file_version"] == 3
    assert [h["id"] for h in document["hooks"]["auth"]] == [h["id"] for h in auth]
    # Equivalent: the applied file's hooks, field for field, as the server reads them.
    applied = json.loads(wanted.read_text())["hooks"]["auth"]
    server_set = {"match", "version", "created_at", "updated_at"}
    for mine, theirs in zip(applied, document["hooks"]["auth"], strict=True):
        assert {k: theirs.get(k) for k in mine if k not in server_set} == {
            k: v for k, v in mine.items() if k not in server_set
        }
        assert theirs["match"]["path"] == mine["match"]["path"]
    again = cli("apply", str(exported), "--api", api.url)
    assert again.returncode == 0, again.stderr
    assert "auth: unchanged" in again.stdout and again.stdout.splitlines()[-1] == "nothing to apply"
    assert json.loads(container_file.read_text())["file_version"] == 3


def test_apply_reports_the_servers_refusal(
    api: ApiProcess, client: httpx.Client, container_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"container": "demo", "hooks": {"auth": [hook("/x", "/missing.py")]}}))
    result = cli("apply", str(path), "--api", api.url)
    assert result.returncode == 1
    assert "hooks.auth[0].script.path" in result.stderr
