"""proxy-hooks in the mitmproxy people already have, installed with pipx (`make test` builds the
two under var/pipx/ and names their folder in PROXY_HOOKS_PIPX_DIR): `bare` holds mitmproxy
alone, `injected` got the built wheel with `pipx inject --include-apps mitmproxy …`.

Loaded into a mitmproxy whose Python lacks our dependencies, the -s file must say in one line
what to install where, not print a traceback; injected, `mitmdump -s "$(proxy-hooks
addon-path)"` must enforce hooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (
    ADDON,
    ROOT,
    Installed,
    Mitmdump,
    Upstream,
    hook,
    set_hooks,
    write_json,
)
from tests.proxy_fixtures import installed_proxy, upstream  # noqa: F401 - fixture

PIPX_DIR = os.environ.get("PROXY_HOOKS_PIPX_DIR")
WHEEL_VENV = os.environ.get("PROXY_HOOKS_WHEEL_VENV")
needs_pipx_installs = pytest.mark.skipif(
    not (PIPX_DIR and WHEEL_VENV),
    reason="needs mitmproxy installed with pipx, with and without the wheel injected: `make test` "
    "builds both and sets PROXY_HOOKS_PIPX_DIR (and PROXY_HOOKS_WHEEL_VENV)",
)
# The modules proxy-hooks needs that a plain mitmproxy does not have (pyproject's dependencies).
OUR_DEPENDENCIES = {"aiohttp", "pydantic", "watchfiles", "ulid"}
LOAD_DEADLINE_S = 60


def bare_mitmdump(addon: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """mitmdump of the pipx-installed mitmproxy alone, loading `addon`; it must exit."""
    assert PIPX_DIR is not None
    return subprocess.run(
        [str(Path(PIPX_DIR) / "bare" / "bin" / "mitmdump"), "--listen-host", "127.0.0.1",
         "--listen-port", "0", "--set", f"confdir={home / 'confdir'}", "-s", str(addon),
         "--set", f"hooks_config={write_json(home / 'hooks.json', {'container': 'x', 'services': {}})}"],
        capture_output=True, text=True, timeout=LOAD_DEADLINE_S, cwd=home,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip


def our_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if "proxy-hooks" in line]


def bare_python() -> str:
    assert PIPX_DIR is not None
    return str(Path(PIPX_DIR) / "bare" / "venvs" / "mitmproxy" / "bin" / "python")


def bare_mitmproxy_version() -> str:
    found = subprocess.run(
        [bare_python(), "-c", "import mitmproxy.version as v; print(v.VERSION)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return found.stdout.strip()


@needs_pipx_installs
def test_a_clone_loaded_into_a_bare_mitmproxy_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    result = bare_mitmdump(ADDON, tmp_path)
    assert result.returncode != 0, "mitmdump must not run on without the addon"
    [line] = our_lines(result)
    found = re.search(
        r"proxy-hooks: this mitmproxy's Python \((\S+)\) lacks '(\w+)'; install proxy-hooks into it: "
        r"pipx inject --include-apps mitmproxy (\S+) --pip-args=mitmproxy==(\S+)$",
        line,
    )
    assert found, line
    assert os.path.samefile(found.group(1), bare_python())
    assert found.group(2) in OUR_DEPENDENCIES
    assert found.group(3) == str(ROOT)  # this clone's path: what `pip install` needs here
    assert found.group(4) == bare_mitmproxy_version()  # kept, not downgraded to fit our dependencies


@needs_pipx_installs
def test_an_installed_addon_file_loaded_into_a_bare_mitmproxy_says_proxy_hooks_is_missing(
    tmp_path: Path,
) -> None:
    """The -s file of another installation (its `proxy-hooks addon-path`) must not import from
    that installation's site-packages: this Python lacks the package, and is told so."""
    assert WHEEL_VENV is not None
    result = bare_mitmdump(Installed(Path(WHEEL_VENV) / "bin").addon, tmp_path)
    assert result.returncode != 0
    [line] = our_lines(result)
    assert line.endswith(
        f"proxy-hooks: this mitmproxy's Python ({bare_python()}) lacks the proxy-hooks package "
        "('addon'); install proxy-hooks into it: pipx inject --include-apps mitmproxy proxy-hooks "
        f"--pip-args=mitmproxy=={bare_mitmproxy_version()}"
    ), line


@pytest.fixture(scope="module")
def injected(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Mitmdump]:
    """`mitmdump -s "$(proxy-hooks addon-path)"`, both from pipx's bin folder after the inject."""
    assert PIPX_DIR is not None
    installation = Installed(Path(PIPX_DIR) / "injected" / "bin")
    assert installation.addon.is_relative_to(Path(PIPX_DIR) / "injected" / "venvs" / "mitmproxy")
    process = installed_proxy(tmp_path_factory, upstream, installation)
    yield process
    process.stop()


@needs_pipx_installs
def test_a_pipx_injected_mitmproxy_enforces_hooks(injected: Mitmdump, upstream: Upstream) -> None:
    with injected.api() as api:
        set_hooks(api, "e2e", "auth", [hook("/injected/**", "/act.py")])
    with injected.client() as http:
        blocked = http.get("http://auth.test/injected/x", headers={"x-act": "block"})
        passed = http.get("http://auth.test/elsewhere", headers={"x-marker": "pipx-passed"})
    assert blocked.status_code == 403, blocked.text
    assert not upstream.seen("/injected/x")
    assert passed.status_code == 200 and upstream.seen("pipx-passed")


def test_a_plain_venv_is_told_to_pip_install_into_its_python() -> None:
    """Outside pipx the command is pip's, with this Python's own path."""
    from mitmproxy.version import VERSION

    from addon import proxy_hooks

    line = proxy_hooks.missing_dependency(ModuleNotFoundError("No module named 'pydantic'", name="pydantic"))
    assert line == (
        f"proxy-hooks: this mitmproxy's Python ({sys.executable}) lacks 'pydantic'; install proxy-hooks "
        f"into it: {sys.executable} -m pip install {ROOT} mitmproxy=={VERSION}"
    )
    other = proxy_hooks.missing_dependency(ImportError("cannot import name 'TypeAdapter' from 'pydantic'"))
    assert "cannot import what proxy-hooks needs (cannot import name 'TypeAdapter' from 'pydantic')" in other
