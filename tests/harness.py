"""Real parts for end-to-end tests: an aiohttp upstream that records what reaches it, and a real
`mitmdump` running the addon, with its control API, on loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon" / "proxy_hooks.py"
STARTUP_DEADLINE_S = 30.0


def wait_for(predicate: Callable[[], Any], deadline_s: float = 10.0, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; fail after the deadline. Never a fixed sleep."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def set_aside(folder: Path, pattern: str = "events.db.corrupt-*") -> list[Path]:
    """The corrupt events stores the recorder moved aside in `folder` (or other matches)."""
    return sorted(folder.glob(pattern))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Upstream:
    """An aiohttp server in its own thread and loop; `requests` is what reached it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port: int = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # large uploads go through too
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        record = {
            "method": request.method,
            "path": request.path_qs,
            "raw_path": request.raw_path,  # as it arrived, before aiohttp decoded it
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.requests.append(record)
        return web.json_response(
            {"upstream": True, "method": request.method, "path": request.path_qs},
            headers={"x-upstream": "yes"},
        )

    def seen(self, marker: str) -> list[dict[str, Any]]:
        """Requests carrying `marker` in their path or their x-marker header."""
        return [r for r in self.requests if marker in r["path"] or r["headers"].get("x-marker") == marker]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def mitmdump_command() -> str:
    return str(Path(sys.executable).with_name("mitmdump"))


@dataclass(frozen=True)
class Installed:
    """proxy-hooks as a user installs it (not this checkout): `bin` holds the `mitmdump` and
    `proxy-hooks` commands of that installation (a venv's bin, or pipx's bin folder)."""

    bin: Path

    @property
    def mitmdump(self) -> list[str]:
        """Its mitmdump, through its own shebang's interpreter plus -u: pipx's scripts run
        `python -E`, which ignores PYTHONUNBUFFERED, and the lines the harness waits for would
        sit in a buffer until mitmdump exits."""
        script = self.bin / "mitmdump"
        interpreter, *flags = script.read_text().splitlines()[0].removeprefix("#!").split()
        return [interpreter, *flags, "-u", str(script)]

    @property
    def addon(self) -> Path:
        """The `-s` file, as a user finds it: `proxy-hooks addon-path`."""
        found = subprocess.run(
            [str(self.bin / "proxy-hooks"), "addon-path"],
            capture_output=True, text=True, check=True, cwd=self.bin,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )  # fmt: skip
        return Path(found.stdout.strip())


class Mitmdump:
    """`mitmdump -s addon/proxy_hooks.py` in regular mode (and reverse mode when asked)."""

    def __init__(
        self,
        config: Path | str,
        confdir: Path,
        *extra: str,
        reverse_to: str | None = None,
        env: dict[str, str] | None = None,
        events: str | None = None,
        connection_strategy: str = "lazy",
        installed: Installed | None = None,
        default_events: bool = False,
        cwd: Path | None = None,
    ):
        """`installed`: run that installation's mitmdump and addon instead of this checkout's.
        `default_events`: leave hooks_events unset (the store beside the hooks), rather than
        `events` or `confdir/events.db`."""
        self.reverse_port = free_port() if reverse_to else None
        modes = ["--mode", "regular@0"]
        if reverse_to:
            modes += ["--mode", f"reverse:{reverse_to}@{self.reverse_port}"]
        mitmdump, addon = (
            ([mitmdump_command()], ADDON) if installed is None else (installed.mitmdump, installed.addon)
        )
        command = [
            *mitmdump, "--listen-host", "127.0.0.1", *modes,
            "--set", f"confdir={confdir}",
            "--set", f"connection_strategy={connection_strategy}",
            "-s", str(addon),
            "--set", f"hooks_config={config}",
            "--set", "hooks_api=127.0.0.1:0",
            *([] if default_events else
              ["--set", f"hooks_events={confdir / 'events.db' if events is None else events}"]),
            *extra,
        ]  # fmt: skip
        # An installation runs away from the checkout, which must not shadow what it installed.
        self._launch(command, confdir, env, cwd=cwd or (None if installed is None else confdir.parent))

    def _launch(
        self, command: list[str], confdir: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        """Start `command` (mitmdump, or what runs it) and wait until the proxy and its API listen."""
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = int(self._await_line(r"HTTP\(S\) proxy listening at 127\.0\.0\.1:(\d+)"))
        self.api_url = self._await_line(r"control API listening on (http://\S+)")
        self.proxy_url = f"http://127.0.0.1:{self.port}"
        self.ca_cert = confdir / "mitmproxy-ca-cert.pem"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def _await_line(self, pattern: str) -> str:
        regex = re.compile(pattern)

        def found() -> str | None:
            for line in list(self.lines):
                if match := regex.search(line):
                    return match.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError("mitmdump exited:\n" + self.output())
            return None

        try:
            return str(wait_for(found, STARTUP_DEADLINE_S, f"mitmdump to print {pattern!r}"))
        except AssertionError:
            self.stop()
            raise RuntimeError("mitmdump did not start:\n" + self.output()) from None

    def output(self) -> str:
        return "".join(self.lines)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(proxy=self.proxy_url, timeout=30.0, **kwargs)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30.0)

    def stop(self) -> None:
        interrupt(self.proc)


def interrupt(proc: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    """Stop mitmdump as Ctrl-C does (its `done` hooks run), killed if it has not within the time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def set_hooks(api: httpx.Client, container: str, service: str, hooks: list[dict[str, Any]]) -> dict[str, Any]:
    """Replace a service's hooks through the API (live for the next flow)."""
    url = f"/api/v1/containers/{container}/proxy/hooks/{service}"
    etag = api.get(url).headers["ETag"]
    response = api.put(url, json={"hooks": hooks}, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def hook(path: str, script: str, method: Any = "*", **extra: Any) -> dict[str, Any]:
    return {
        "match": {"method": method, "path": path, **extra.pop("match", {})},
        "script": {"path": script},
        **extra,
    }


def container_doc(upstream: Upstream, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "container": "e2e",
        "file_version": 1,
        "services": {
            # 127.0.0.1:<port> is what a flow's destination is in reverse mode.
            "auth": {"hosts": ["auth.test", f"127.0.0.1:{upstream.port}"], "upstream": upstream.url},
            "billing": {"hosts": ["billing.test", "*.billing.test"], "upstream": upstream.url},
        },
        "groups": {
            "admins": {"headers": {"x-role": "admin"}},
            "locals": {"clients": ["127.0.0.0/8"]},
            "remote": {"clients": ["10.0.0.0/8"]},
        },
        "hooks": {"auth": [], "billing": []},
    }
    doc.update(changes)
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path
