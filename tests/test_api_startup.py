"""`proxy-hooks api` start-up: a bad configuration is a clear error naming file, field, reason."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ApiProcess, demo, proxy_hooks_command, write_container


def start(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*proxy_hooks_command(), "api", "--config", str(config), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_invalid_file_at_startup_names_file_field_and_reason(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json", demo(scripts_dir=""))
    result = start(path)
    assert result.returncode == 2
    assert "cannot load the hooks configuration" in result.stderr
    assert f"{path}: scripts_dir: must not be empty" in result.stderr


def test_unreadable_and_missing_config(tmp_path: Path) -> None:
    result = start(tmp_path / "missing.json")
    assert result.returncode == 2
    assert f"{tmp_path / 'missing.json'}: no such file or folder" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty}: no *.json hooks files in this folder" in start(empty).stderr


def test_folder_serves_one_container_per_file(tmp_path: Path) -> None:
    write_container(tmp_path / "a.json", demo(container="alpha"))
    write_container(tmp_path / "b.json", demo(container="beta", file_version=7))
    api = ApiProcess(tmp_path)
    try:
        with api.client() as http:
            health = http.get("/healthz").json()["data"]["containers"]
            assert [(c["id"], c["file_version"]) for c in health] == [("alpha", 1), ("beta", 7)]
            assert http.get("/api/v1/containers/beta/proxy/hooks").headers["ETag"] == "file:v7"
            assert http.get("/api/v1/containers/demo/proxy/hooks").status_code == 404
    finally:
        api.stop()
