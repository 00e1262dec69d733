"""`proxy-hooks run`: mitmdump with the addon, checked configuration first."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx

from addon.launcher import mitmdump_args
from tests.conftest import demo, proxy_hooks_command, write_container
from tests.harness import free_port, wait_for


def test_bad_config_is_refused_before_the_proxy_starts(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json", demo(hooks={"nope": []}))
    result = subprocess.run(
        [*proxy_hooks_command(), "run", "--config", str(path), "--listen-port", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{path}: hooks.nope: service 'nope' is not defined under 'services'" in result.stderr


def test_run_serves_the_proxy_and_the_api(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    api_port = free_port()
    proc = subprocess.Popen(
        [*proxy_hooks_command(), "run", "--config", str(path), "--listen-port", "0",
         "--api", f"127.0.0.1:{api_port}", "--events", str(tmp_path / "events.db"),
         "--set", f"confdir={tmp_path / 'conf'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None

        def proxy_port() -> str | None:
            line = proc.stdout.readline() if proc.stdout else ""
            lines.append(line)
            found = re.search(r"proxy listening at 127\.0\.0\.1:(\d+)", line)
            return found.group(1) if found else None

        port = wait_for(proxy_port, 30, "the proxy to listen")
        wait_for(
            lambda: "control API listening" in (proc.stdout.readline() if proc.stdout else ""), 30, "API"
        )
        health = httpx.get(f"http://127.0.0.1:{api_port}/healthz").json()["data"]
        assert health["containers"][0]["id"] == "demo"
        # Unknown hosts pass; the proxy answers.
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as http:
            response = http.get(f"http://127.0.0.1:{api_port}/healthz")
            assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)


def test_mitmdump_args_pass_options_through(tmp_path: Path) -> None:
    args = mitmdump_args(tmp_path / "c.json", "127.0.0.1", 8080, "", ["reverse:http://x:1"], ["--set", "k=v"])
    assert args[:6] == ["--listen-host", "127.0.0.1", "--listen-port", "8080", "--mode", "reverse:http://x:1"]
    assert "connection_strategy=lazy" in args and "hooks_api=" in args and args[-2:] == ["--set", "k=v"]


def test_an_option_the_user_sets_is_not_set_twice(tmp_path: Path) -> None:
    """mitmproxy drops every option of an -s script when one is given twice."""
    extra = ["--set", "hooks_api=127.0.0.1:9999", "--set=connection_strategy=eager"]
    args = mitmdump_args(tmp_path / "c.json", "127.0.0.1", 8080, "127.0.0.1:8082", [], extra)
    specs = [args[i + 1] for i, a in enumerate(args) if a == "--set"] + [
        a.removeprefix("--set=") for a in args if a.startswith("--set=")
    ]
    names = [spec.split("=", 1)[0] for spec in specs]
    assert sorted(names) == ["connection_strategy", "hooks_api", "hooks_config"]
    assert "hooks_api=127.0.0.1:9999" in specs and "connection_strategy=eager" in specs
    # --events goes through the same rule: a user's own --set hooks_events wins, never both.
    args = mitmdump_args(
        tmp_path / "c.json", "h", 1, "", [], ["--set", "hooks_events=mine.db"], events="x.db"
    )
    assert [a for a in args if a.startswith("hooks_events=")] == ["hooks_events=mine.db"]
    args = mitmdump_args(tmp_path / "c.json", "h", 1, "", [], [], events="x.db")
    assert [a for a in args if a.startswith("hooks_events=")] == ["hooks_events=x.db"]
