"""`proxy-hooks apply` and `export` as CI runs them: CLI subprocesses against a real
`proxy-hooks api` on loopback. The dry run's diff names each add, edit, move and removal and
writes nothing; the apply is one version; export round-trips to an equivalent file."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Callable
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


class _Interloper(http.server.BaseHTTPRequestHandler):
    """Forwards to the real API, but lets another writer in just before the CLI's PUT."""

    api_url = ""
    interlude: Callable[[], None] = staticmethod(lambda: None)

    def _forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT":
            type(self).interlude()
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("if-match", "content-type")}
        with httpx.Client(base_url=self.api_url) as upstream:
            answer = upstream.request(self.command, self.path, content=body, headers=headers)
        self.send_response(answer.status_code)
        for name in ("content-type", "etag"):
            if name in answer.headers:
                self.send_header(name, answer.headers[name])
        self.send_header("content-length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_PUT = _forward

    def log_message(self, *args: Any) -> None:
        pass


def test_apply_writes_nothing_and_shows_what_moved_underneath(
    api: ApiProcess, client: httpx.Client, container_file: Path, tmp_path: Path
) -> None:
    hooks = seed_two(client, container_file.parent)

    def another_writer() -> None:
        url = f"{BASE}/auth/second"
        edited = client.patch(
            url, json=hook("/two/**", "/a.py", name="second"), headers={"If-Match": "file:v2"}
        )
        assert edited.status_code == 200, edited.text

    handler = type("Handler", (_Interloper,), {"api_url": api.url, "interlude": staticmethod(another_writer)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = cli(
            "apply", str(desired(tmp_path, hooks)), "--api", f"http://127.0.0.1:{server.server_port}"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert "changed underneath (file:v2 → file:v3); nothing written" in result.stderr
    assert f'  ~ edit \'second\' ({hooks[1]["id"]}, * /two): match.path: "/two" → "/two/**"' in result.stderr
    on_disk = json.loads(container_file.read_text())
    assert on_disk["file_version"] == 3  # the other writer's version, and only that
    assert [h.get("name") for h in on_disk["hooks"]["auth"]] == [None, "second", "third"]
