"""Fixtures for tests through a real mitmdump with the addon, in front of a real upstream.

Import them into a test module (`from tests.proxy_fixtures import ...`): each module then gets
its own proxy, upstream and container, and these `api`/`client` shadow conftest's (which drive
a standalone `proxy-hooks api`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Installed, Mitmdump, Upstream, container_doc, set_hooks, write_json

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.stop()


def home_with(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, label: str, **changes: Any
) -> Path:
    """A module's own folder: the test scripts, and the e2e container (`container_doc` with
    `changes`) as e2e.json."""
    folder = tmp_path_factory.mktemp(label)
    shutil.copytree(SCRIPTS, folder / "scripts")
    write_json(folder / "e2e.json", container_doc(upstream, **changes))
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Path:
    folder = home_with(tmp_path_factory, upstream, "proxy")
    # No known extension: executed directly, through its shebang.
    executable = shutil.copy(folder / "scripts" / "act.sh", folder / "scripts" / "act-exec")
    Path(executable).chmod(0o755)
    return folder


def installed_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Upstream,
    installation: Installed,
    env: dict[str, str] | None = None,
) -> Mitmdump:
    """A proxy run by `installation`'s mitmdump and -s file (not this checkout's) for the e2e
    container, with the test scripts beside it."""
    folder = tmp_path_factory.mktemp("installed")
    shutil.copytree(SCRIPTS, folder / "scripts")
    config = write_json(folder / "e2e.json", container_doc(upstream))
    return Mitmdump(config, folder / "confdir", installed=installation, env=env)


@pytest.fixture(scope="module")
def proxy(request: pytest.FixtureRequest, home: Path, upstream: Upstream) -> Iterator[Mitmdump]:
    """A module may set PROXY_OPTIONS (mitmdump arguments, e.g. `--set` of an addon option)."""
    process = Mitmdump(
        home / "e2e.json",
        home / "confdir",
        *getattr(request.module, "PROXY_OPTIONS", ()),
        reverse_to=upstream.url,
        env={"PROXY_HOOKS_TEST_SECRET": "leak"},
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.api() as client:
        yield client


@pytest.fixture
def client(proxy: Mitmdump, api: httpx.Client) -> Iterator[httpx.Client]:
    for service in ("auth", "billing"):
        set_hooks(api, "e2e", service, [])
    with proxy.client() as http:
        yield http
