"""A client generated from the live OpenAPI document (openapi-python-client, as a user would run
it) reads well and works: its functions carry the seed SDK's names, and it lists, creates,
replaces, moves and removes hooks against a real `proxy-hooks api` (a real hooks file and SQLite
events store in a temp folder). Generated once per module: the generator takes a while.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import ApiProcess, demo, write_container

PACKAGE = "proxy_hooks_client"
SEED_FUNCTIONS = {
    "list_container_proxy_hooks",
    "list_container_proxy_service_hooks",
    "get_container_proxy_hook",
    "add_container_proxy_hook",
    "update_container_proxy_hook",
    "move_container_proxy_hook",
    "clear_container_proxy_service_hooks",
    "remove_container_proxy_hook",
}
SEED_ID = "01hz8x9k2b3c4d5e6f7g8h9j0k"


def snake(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    auth = [{"id": SEED_ID, "match": {"method": "GET", "path": "/v1/**"}, "script": {"path": "/hooks/ok.sh"}}]
    path = write_container(tmp_path_factory.mktemp("client") / "demo.json", demo(hooks={"auth": auth}))
    (path.parent / "scripts" / "hooks" / "ok.sh").write_text("exit 0\n")
    return path.parent


@pytest.fixture(scope="module")
def live(home: Path) -> Iterator[ApiProcess]:
    process = ApiProcess(home / "demo.json", events=home / "events.db")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def generated(live: ApiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package, generated from the document the live API serves, and imported."""
    folder = tmp_path_factory.mktemp("generated")
    config = folder / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter run: nothing beyond this venv
    result = subprocess.run(
        [str(Path(sys.executable).with_name("openapi-python-client")), "generate",
         "--url", f"{live.url}/api/v1/openapi.json", "--meta", "none",
         "--output-path", str(folder / PACKAGE), "--config", str(config)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _function_modules(package: ModuleType) -> dict[str, set[str]]:
    """The generated modules, one per operation, by tag module (api/<tag>/<operation>.py)."""
    api = importlib.import_module(f"{package.__name__}.api")
    return {
        tag.name: {m.name for m in pkgutil.iter_modules([str(Path(api.__path__[0]) / tag.name)])}
        for tag in pkgutil.iter_modules(api.__path__)
    }


def test_functions_carry_the_seed_sdk_names_by_area(generated: ModuleType, live: ApiProcess) -> None:
    modules = _function_modules(generated)
    assert set(modules) == {"proxy_hooks", "events", "debugging", "script_protocol", "server"}
    assert "add_container_proxy_event" in modules["events"]
    assert "get_proxy_protocol" in modules["script_protocol"]
    assert SEED_FUNCTIONS | {"replace_container_proxy_service_hooks"} <= modules["proxy_hooks"]
    document = httpx.get(f"{live.url}/api/v1/openapi.json").json()
    ids = {op["operationId"] for ops in document["paths"].values() for op in ops.values()}
    assert {name for names in modules.values() for name in names} == {snake(i) for i in ids}
    assert {"list_container_proxy_events", "dry_run_container_proxy_hook", "get_health"} <= {
        name for names in modules.values() for name in names
    }


def _on_disk(home: Path) -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = json.loads((home / "demo.json").read_text())["hooks"]["auth"]
    return hooks


def test_list_create_patch_move_delete_with_the_generated_client(
    generated: ModuleType, live: ApiProcess, home: Path
) -> None:
    from proxy_hooks_client import Client
    from proxy_hooks_client.api.proxy_hooks import (
        add_container_proxy_hook,
        get_container_proxy_hook,
        list_container_proxy_hooks,
        list_container_proxy_hooks_head,
        list_container_proxy_service_hooks,
        move_container_proxy_hook,
        remove_container_proxy_hook,
        update_container_proxy_hook,
    )
    from proxy_hooks_client.models import ErrorBody, HookCreate, HookMove, HookReplace, Match, ScriptRef

    client = Client(base_url=live.url, raise_on_unexpected_status=True)
    listed = list_container_proxy_hooks.sync_detailed(id="demo", client=client)
    assert listed.status_code == 200 and type(listed.parsed).__name__ == "ListContainerProxyHooksResponse200"
    assert [h.id for h in listed.parsed.data.hooks["auth"]] == [SEED_ID]
    etag = listed.headers["ETag"]
    assert etag == listed.parsed.data.etag == "file:v1"

    body = HookCreate(match=Match(method="POST", path="/v1/login"), script=ScriptRef(path="/hooks/ok.sh"),
                      description="written by a generated client")  # fmt: skip
    created = add_container_proxy_hook.sync_detailed(
        id="demo", service="auth", client=client, body=body, if_match=etag
    )
    assert created.status_code == 201 and type(created.parsed).__name__ == "AddContainerProxyHookResponse201"
    hook = created.parsed.data.hook
    assert (hook.position, hook.match.path) == (1, "/v1/login")
    assert hook.description == "written by a generated client"
    assert [h["id"] for h in _on_disk(home)] == [SEED_ID, hook.id]

    replacement = HookReplace(match=Match(method=["PUT", "PATCH"], path="/v2/*"),
                              script=ScriptRef(path="/hooks/ok.sh"), timeout=1500)  # fmt: skip
    updated = update_container_proxy_hook.sync_detailed(
        id="demo", service="auth", hook_id=hook.id, client=client, body=replacement,
        if_match=created.parsed.data.etag,
    )  # fmt: skip
    assert updated.status_code == 200 and updated.parsed.data.hook.timeout == 1500
    stored = _on_disk(home)[1]
    assert (stored["id"], stored["match"], stored["timeout"]) == (
        hook.id, {"method": ["PUT", "PATCH"], "path": "/v2/*"}, 1500
    )  # fmt: skip
    assert "description" not in stored  # PATCH replaces the whole hook

    moved = move_container_proxy_hook.sync_detailed(
        id="demo", service="auth", hook_id=hook.id, client=client, body=HookMove(position=0),
        if_match=updated.headers["ETag"],
    )  # fmt: skip
    assert moved.status_code == 200 and moved.parsed.data.hook.position == 0
    order = list_container_proxy_service_hooks.sync_detailed(id="demo", service="auth", client=client)
    assert [h.id for h in order.parsed.data.hooks] == [hook.id, SEED_ID] == [h["id"] for h in _on_disk(home)]

    stale = remove_container_proxy_hook.sync_detailed(
        id="demo", service="auth", hook_id=hook.id, client=client, if_match=etag
    )
    assert stale.status_code == 412 and isinstance(stale.parsed, ErrorBody)
    assert (stale.parsed.code, stale.parsed.message) == ("PRECONDITION_FAILED", "etag_mismatch")
    current = list_container_proxy_hooks_head.sync_detailed(id="demo", client=client)
    assert current.status_code == 200 and current.content == b""
    assert current.headers["ETag"] == stale.headers["ETag"] == moved.parsed.data.etag == "file:v4"

    removed = remove_container_proxy_hook.sync_detailed(
        id="demo", service="auth", hook_id=hook.id, client=client, if_match=current.headers["ETag"]
    )
    assert removed.status_code == 200 and removed.parsed.message == "Hook removed successfully"
    assert [h["id"] for h in _on_disk(home)] == [SEED_ID]
    gone = get_container_proxy_hook.sync_detailed(id="demo", service="auth", hook_id=hook.id, client=client)
    assert gone.status_code == 404 and isinstance(gone.parsed, ErrorBody)
    assert gone.parsed.details[0].reason == f"hook '{hook.id}' in service 'auth'"


def test_events_are_read_with_the_generated_client(generated: ModuleType, live: ApiProcess) -> None:
    """A dry run is recorded in the SQLite store; the list's filters go out as the API reads them."""
    from proxy_hooks_client import Client
    from proxy_hooks_client.api.debugging import dry_run_container_proxy_hook
    from proxy_hooks_client.api.events import list_container_proxy_events
    from proxy_hooks_client.models import (
        DryRunRequest,
        ListContainerProxyEventsKindItem,
        ListContainerProxyEventsOutcomeItem,
    )

    client = Client(base_url=live.url, raise_on_unexpected_status=True)
    ran = dry_run_container_proxy_hook.sync_detailed(
        id="demo", service="auth", hook_id=SEED_ID, client=client,
        body=DryRunRequest(method="GET", path="/v1/generated"),
    )  # fmt: skip
    assert ran.status_code == 200 and ran.parsed.data.outcome == "continued"
    listed = list_container_proxy_events.sync_detailed(
        id="demo", client=client, kind=[ListContainerProxyEventsKindItem.DRY_RUN],
        outcome=[ListContainerProxyEventsOutcomeItem.CONTINUED, ListContainerProxyEventsOutcomeItem.BLOCKED],
    )  # fmt: skip
    assert listed.status_code == 200
    paths = [e.path for e in listed.parsed.data.events]
    assert "/v1/generated" in paths
    none = list_container_proxy_events.sync_detailed(
        id="demo", client=client, kind=[ListContainerProxyEventsKindItem.DRY_RUN],
        outcome=[ListContainerProxyEventsOutcomeItem.BLOCKED],
    )  # fmt: skip
    assert none.status_code == 200 and none.parsed.data.events == []
