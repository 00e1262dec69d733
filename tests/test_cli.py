"""The `proxy-hooks` command as a first day meets it, through its real entry point: --version,
--help (every command, one line each), run --help (every addon option), addon-path, and a
port already in use named with the option that moves it. And `make run`'s own promises
(runtime dependencies only; PROXY_PORT and API), read from make's dry run."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy.test import taddons

import addon
from addon.enforcer import ProxyHooks
from tests.conftest import proxy_hooks_command, write_container
from tests.harness import ADDON, ROOT, mitmdump_command

COMMANDS = {"run", "api", "explain", "check", "hook-server", "addon-path", "apply", "export", "db"}


def proxy_hooks(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*proxy_hooks_command(), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
    )  # fmt: skip


def test_version_names_ours_and_mitmproxys() -> None:
    result = proxy_hooks("--version")
    assert result.returncode == 0, result.stderr
    mitmproxy = importlib.metadata.version("mitmproxy")
    assert result.stdout.startswith(
        f"proxy-hooks {importlib.metadata.version('proxy-hooks')} (mitmproxy {mitmproxy}"
    )


def test_help_lists_every_command_on_one_line() -> None:
    result = proxy_hooks("--help")
    assert result.returncode == 0, result.stderr
    listed = {}
    for line in result.stdout.splitlines():
        if found := re.fullmatch(r"    (\S+) +(\S.*)", line):
            listed[found.group(1)] = found.group(2)
    assert set(listed) == COMMANDS, result.stdout
    assert all(len(text) > 10 for text in listed.values()), listed
    # Nothing wrapped onto a line of its own: each command's help is on its line alone.
    assert not re.search(r"^ {5,}\S", result.stdout.split("commands:", 1)[1], re.MULTILINE), result.stdout


def test_run_help_lists_the_addons_options() -> None:
    with taddons.context(ProxyHooks()) as tctx:
        declared = {name: option.help for name, option in tctx.options.items() if name.startswith("hooks_")}
    assert len(declared) >= 10
    result = proxy_hooks("run", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # as one line: help paragraphs are wrapped
    for name, help_text in declared.items():
        assert f" {name} (" in text, name
        assert " ".join(help_text.split()) in text, name


def test_addon_path_is_the_packages_mitmdump_file() -> None:
    result = proxy_hooks("addon-path")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == Path(addon.__file__).parent / "proxy_hooks.py"
    assert path.is_file() and "addons = " in path.read_text()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield int(sock.getsockname()[1])


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def test_a_taken_proxy_port_is_named_with_its_option(tmp_path: Path, busy_port: int) -> None:
    config = str(write_container(tmp_path / "demo.json"))
    args = ("run", "--config", config, "--listen-port", str(busy_port), "--api", "127.0.0.1:0")
    result = proxy_hooks(*args)
    assert result.returncode == 2
    assert result.stderr == f"proxy-hooks: port {busy_port} is in use; pick another with --listen-port\n"
    assert result.stdout == ""  # mitmproxy never started: no hint of its own
    via_make = proxy_hooks(*args, env={"PROXY_HOOKS_VIA_MAKE": "1"})
    assert via_make.stderr.endswith("pick another with --listen-port (make run PROXY_PORT=…)\n")


def test_a_taken_api_port_is_named_with_its_option(tmp_path: Path, busy_port: int) -> None:
    config = str(write_container(tmp_path / "demo.json"))
    args = ("run", "--config", config, "--listen-port", "0", "--api", f"127.0.0.1:{busy_port}")
    result = proxy_hooks(*args, env={"PROXY_HOOKS_VIA_MAKE": "1"})
    assert result.returncode == 2
    assert result.stderr == (
        f"proxy-hooks: port {busy_port} is in use; pick another with --api HOST:PORT (make run API=…)\n"
    )
    same = free_port()
    result = proxy_hooks("run", "--config", config, "--listen-port", str(same), "--api", f"127.0.0.1:{same}")
    assert result.returncode == 2
    assert (
        result.stderr
        == f"proxy-hooks: port {same} is in use by the proxy itself; pick another with --api HOST:PORT\n"
    )


def test_a_taken_port_of_the_api_alone_is_named_with_its_option(tmp_path: Path, busy_port: int) -> None:
    config = str(write_container(tmp_path / "demo.json"))
    result = proxy_hooks("api", "--config", config, "--listen", f"127.0.0.1:{busy_port}", "--events", "")
    assert result.returncode == 2
    assert (
        f"proxy-hooks api: port {busy_port} is in use; pick another with --listen HOST:PORT" in result.stderr
    )


# --- make run, as make would run it (dry run: nothing installed or started) ---

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make_dry_run(target: str, *variables: str, venv: Path) -> str:
    result = subprocess.run(
        ["make", "-n", target, f"VENV={venv}", *variables],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_make
def test_make_run_installs_the_runtime_only_and_make_test_the_test_extra(tmp_path: Path) -> None:
    run = make_dry_run("run", venv=tmp_path / "venv")
    installs = [line for line in run.splitlines() if "pip install" in line]
    assert installs and all("[test]" not in line for line in installs), run
    assert any(line.rstrip().endswith(" -e .") for line in installs), run
    test = make_dry_run("test", venv=tmp_path / "venv")
    assert any("-e '.[test]'" in line for line in test.splitlines()), test


@needs_make
def test_make_run_takes_proxy_port_and_api(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    command = make_dry_run("run", "PROXY_PORT=8190", "API=8192", venv=venv)
    assert "--listen-port 8190 --api 127.0.0.1:8192" in command, command
    command = make_dry_run("run", "API=127.0.0.2:8193", venv=venv)
    assert "--listen-port 8080 --api 127.0.0.2:8193" in command, command
    command = make_dry_run("run", "LISTEN=127.0.0.1:8194", venv=venv)  # API's former name
    assert "--api 127.0.0.1:8194" in command, command
    assert "PROXY_HOOKS_VIA_MAKE=1" in command


def test_a_taken_api_port_under_plain_mitmdump_names_the_addon_option(tmp_path: Path, busy_port: int) -> None:
    config = write_container(tmp_path / "demo.json")
    result = subprocess.run(
        [mitmdump_command(), "--listen-host", "127.0.0.1", "--listen-port", "0",
         "--set", f"confdir={tmp_path / 'confdir'}", "-s", str(ADDON), "--set", f"hooks_config={config}",
         "--set", f"hooks_api=127.0.0.1:{busy_port}", "--set", "hooks_events="],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0, "an addon without its API must not run on"
    assert (
        f"proxy-hooks: port {busy_port} is in use; pick another with --set hooks_api=HOST:PORT"
        in result.stdout
    )
