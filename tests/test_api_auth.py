"""Who may call the API: loopback by default, a bearer token for anything else."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from control_api.server import DEFAULT_LISTEN, ListenError, check_listen, is_loopback, parse_listen
from tests.conftest import ApiProcess, proxy_hooks_command, write_container

UNAUTHORIZED = {
    "statusCode": 401,
    "error": "Unauthorized",
    "message": "Missing or invalid bearer token",
    "code": "UNAUTHORIZED",
}


@pytest.mark.parametrize("how", ["flag", "env"])
def test_token_is_required_when_set(tmp_path: Path, how: str) -> None:
    path = write_container(tmp_path / "demo.json")
    if how == "flag":
        api = ApiProcess(path, "--token", "s3cret")
    else:
        api = ApiProcess(path, env={"PROXY_HOOKS_API_TOKEN": "s3cret"})
    try:
        with api.client() as http:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": "Basic s3cret"},
                {"Authorization": "Bearer s3cret-and-more"},
            ):
                for url in ("/healthz", "/api/v1/containers/demo/proxy/hooks"):
                    response = http.get(url, headers=headers)
                    assert response.status_code == 401, (url, headers)
                    assert response.json() == UNAUTHORIZED
                    assert response.headers["WWW-Authenticate"] == "Bearer"
            ok = http.get("/api/v1/containers/demo/proxy/hooks", headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200
    finally:
        api.stop()


def test_non_loopback_listen_without_token_is_refused(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    result = subprocess.run(
        [*proxy_hooks_command(), "api", "--config", str(path), "--listen", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "PROXY_HOOKS_API_TOKEN"},
    )
    assert result.returncode == 2
    assert "without a token" in result.stderr
    assert "--token" in result.stderr and "PROXY_HOOKS_API_TOKEN" in result.stderr
    assert "listening" not in result.stdout


def test_non_loopback_listen_with_token_starts(tmp_path: Path) -> None:
    api = ApiProcess(write_container(tmp_path / "demo.json"), "--token", "t", "--listen", "0.0.0.0:0")
    try:
        port = api.url.rsplit(":", 1)[1]
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Authorization": "Bearer t"})
        assert response.status_code == 200
    finally:
        api.stop()


def test_listen_parsing_and_loopback() -> None:
    assert parse_listen(DEFAULT_LISTEN) == ("127.0.0.1", 8082)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8082", "host:", ":80", "h:99999", "h:x"):
        with pytest.raises(ListenError):
            parse_listen(bad)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.10", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.test"))
    check_listen("127.0.0.1", "")
    check_listen("0.0.0.0", "token")
    with pytest.raises(ListenError):
        check_listen("0.0.0.0", "")
