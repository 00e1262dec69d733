"""Shared fixtures: container files on disk and real `proxy-hooks api` processes on loopback."""

from __future__ import annotations

import copy
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

STARTUP_DEADLINE_S = 20.0

DEMO: dict[str, Any] = {
    "container": "demo",
    "file_version": 1,
    "scripts_dir": "scripts",
    "services": {
        "auth": {"hosts": ["auth.demo.test"], "upstream": "http://127.0.0.1:9001"},
        "billing": {"hosts": ["billing.demo.test"]},
    },
    "groups": {
        "admins": {"clients": ["127.0.0.1/32"], "users": ["alice"], "headers": {"x-role": "admin"}},
        "sre": {"users": ["bob"]},
    },
    "hooks": {
        "auth": [
            {
                "id": "01hz8x9k2b3c4d5e6f7g8h9j0k",
                "match": {"method": "POST", "path": "/v1/login", "headers": {"x-tenant": "acme"}},
                "script": {
                    "subdomain": "hooks",
                    "execId": "exec_01hz8x9k2b3c4d5e6f7g8h9j0k",
                    "path": "/hooks/login-trace.js",
                },
                "timeout": 5000,
                "applies_to": {"groups": ["admins", "sre"]},
            }
        ],
        "billing": [],
    },
}


def proxy_hooks_command() -> list[str]:
    """The installed console script, next to the interpreter running the tests."""
    script = Path(sys.executable).with_name("proxy-hooks")
    return [str(script)] if script.exists() else [sys.executable, "-m", "control_api.cli"]


# The script DEMO's hook runs (in an exec session, so it defines handle): a hook's script must
# exist for the API to accept the hook.
DEMO_SCRIPT = "exports.handle = async (event) => null;\n"


def write_container(path: Path, data: dict[str, Any] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(DEMO if data is None else data, indent=2))
    (path.parent / "scripts" / "hooks").mkdir(parents=True, exist_ok=True)
    (path.parent / "scripts" / "hooks" / "login-trace.js").write_text(DEMO_SCRIPT)
    return path


def write_scripts(folder: Path, *paths: str, source: str = "") -> None:
    """Put a script at each hook `script.path` under a scripts folder, so hooks can refer to it."""
    for path in paths:
        script = folder / path.lstrip("/")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(source)


def demo(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEMO)
    data.update(changes)
    return data


class ApiProcess:
    """A real `proxy-hooks api` subprocess; `url` is where it listens."""

    def __init__(
        self,
        config: Path | str,
        *extra: str,
        env: dict[str, str] | None = None,
        events: Path | str | None = None,
        default_events: bool = False,
        cwd: Path | None = None,
    ):
        """`config`: a hooks file or folder, or a PostgreSQL DSN. `events`: the store to serve, a
        file or a postgresql:// URL (default: events.db beside the config; none for a DSN config);
        with `default_events`, no --events at all (the configuration's own store, if any)."""
        self.config = config
        folder = None if isinstance(config, str) else config if config.is_dir() else config.parent
        events_args = (
            []
            if default_events or (folder is None and events is None)
            else ["--events", str(events or Path(str(folder)) / "events.db")]
        )
        self.proc = subprocess.Popen(
            [
                *proxy_hooks_command(),
                "api",
                "--config",
                str(config),
                "--listen",
                "127.0.0.1:0",
                *events_args,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.stderr_lines: list[str] = []
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, lines.put), daemon=True).start()
        threading.Thread(
            target=self._pump, args=(self.proc.stderr, self.stderr_lines.append), daemon=True
        ).start()
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(0.05, min(remaining, 0.5)))
            except queue.Empty:
                if self.proc.poll() is not None or remaining <= 0:
                    self.stop()
                    raise RuntimeError(
                        f"proxy-hooks api did not start: {''.join(self.stderr_lines)}"
                    ) from None
                continue
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def api_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_container(tmp_path_factory.mktemp("api") / "demo.json").parent


@pytest.fixture(scope="module")
def api(api_home: Path) -> Iterator[ApiProcess]:
    """One API process per test module (start-up costs ~0.5 s); `container_file` resets its file."""
    process = ApiProcess(api_home / "demo.json")
    yield process
    process.stop()


def reset_container(path: Path, data: dict[str, Any] | None = None) -> Path:
    """Put a fresh container file in place, forgetting the version history the lock file keeps,
    so a running API takes it as new rather than as a hand edit of the last test's file."""
    path.with_name(f".{path.name}.lock").unlink(missing_ok=True)
    shutil.rmtree(path.parent / "scripts", ignore_errors=True)
    return write_container(path, data)


@pytest.fixture
def container_file(api_home: Path) -> Path:
    return reset_container(api_home / "demo.json")


@pytest.fixture
def client(api: ApiProcess, container_file: Path) -> Iterator[httpx.Client]:
    with api.client() as http:
        yield http


@pytest.fixture
def configs_copy(tmp_path: Path) -> Path:
    """A private copy of the repo's configs/ folder."""
    target = tmp_path / "configs"
    shutil.copytree(Path(__file__).parent.parent / "configs", target)
    return target


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL server for the session (tests/postgres_server.py), started on first use.

    Its folder sits directly under the system temp folder, not pytest's (which must stay 0700 to
    pytest, while the server's unprivileged user needs to reach its folder when we are root).
    """
    import tempfile

    from tests.postgres_server import LocalPostgres

    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="proxy-hooks-pg-")) / "data")
    server.start()
    server.wait_ready()
    try:
        yield server
    finally:
        server.destroy()
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres_server: Any) -> str:
    """A fresh, empty database on the session's server: each test starts from nothing."""
    return str(postgres_server.create_database())
