"""`proxy-hooks check`: offline validation, every problem as `file: field.path: reason`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import demo, proxy_hooks_command, write_container


def run_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*proxy_hooks_command(), "check", *map(str, paths)], capture_output=True, text=True, timeout=30
    )


def test_valid_file_exits_0(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    result = run_check(path)
    assert result.returncode == 0, result.stdout
    assert result.stdout == f"{path}: ok (container 'demo', version 1, 2 services, 1 hooks)\n"


def test_repo_demo_configs_are_valid() -> None:
    result = run_check(Path(__file__).parent.parent / "configs")
    assert result.returncode == 0, result.stdout


def test_check_never_writes(tmp_path: Path) -> None:
    data = demo()
    del data["hooks"]["auth"][0]["id"]  # the API would mint and write one; check must not
    path = write_container(tmp_path / "demo.json", data)
    before = path.read_bytes()
    assert run_check(path).returncode == 0
    assert path.read_bytes() == before
    assert not path.with_name(".demo.json.lock").exists()


def _hook(**changes: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {"match": {"method": "GET", "path": "/a"}, "script": {"path": "/a.py"}}
    hook.update(changes)
    return hook


ERRORS: list[tuple[str, Any, str]] = [
    ("bad JSON", "{oops", "body: malformed JSON: Expecting property name enclosed in double quotes"),
    ("not an object", [], "body: must be a JSON object, got list"),
    ("missing container", {"services": {}}, "container: required field is missing"),
    ("unknown top-level field", demo(extra=1), "extra: unknown field (allowed: container, file_version,"),
    (
        "bad timeout",
        demo(hooks={"auth": [_hook(timeout=0)]}),
        "hooks.auth[0].timeout: must be 1-30000 ms, got 0",
    ),
    (
        "bad method",
        demo(hooks={"auth": [_hook(match={"method": "GETT", "path": "/"})]}),
        "hooks.auth[0].match.method: must be '*' or one of GET",
    ),
    (
        "bad id",
        demo(hooks={"auth": [_hook(id="ABC")]}),
        "hooks.auth[0].id: must be a 26-character lowercase Crockford base32 ULID, got 'ABC'",
    ),
    (
        "undefined group",
        demo(hooks={"auth": [_hook(applies_to={"groups": ["ops"]})]}),
        "hooks.auth[0].applies_to.groups[0]: group 'ops' is not defined in container 'demo' "
        "(defined: admins, sre)",
    ),
    (
        "hooks for an undefined service",
        demo(hooks={"mail": [_hook()]}),
        "hooks.mail: service 'mail' is not defined under 'services' (defined: auth, billing)",
    ),
    (
        "reject-listed service",
        demo(services={"logs": {"hosts": ["x"]}}, hooks={}),
        "services.logs: 'logs' is reject-listed (logs, proxy, workspaces); rename it",
    ),
    (
        "duplicate ids",
        demo(
            hooks={
                "auth": [_hook(id="01hz8x9k2b3c4d5e6f7g8h9j0k")],
                "billing": [_hook(id="01hz8x9k2b3c4d5e6f7g8h9j0k")],
            }
        ),
        "hooks.billing[0].id: duplicate of hooks.auth[0].id",
    ),
    (
        "script escapes",
        demo(hooks={"auth": [_hook(script={"path": "/../../x.py"})]}),
        "hooks.auth[0].script.path: must stay inside the scripts folder",
    ),
    (
        "bad CIDR",
        demo(groups={"g": {"clients": ["10.0.0.0/33"]}}, hooks={}),
        "groups.g.clients[0]: must be an IP address or CIDR block like 10.0.0.0/8, got '10.0.0.0/33'",
    ),
    (
        "bad upstream",
        demo(services={"auth": {"upstream": "ftp://x"}}, hooks={}),
        "services.auth.upstream: must be an http(s) origin",
    ),
]


def test_each_class_of_error(tmp_path: Path) -> None:
    """One file per class of error, all checked by one run (each start costs ~0.5 s)."""
    expected = []
    for index, (case, content, line) in enumerate(ERRORS):
        path = write_container(tmp_path / f"case{index}" / "demo.json")
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        expected.append((case, f"{path}: {line}"))
    result = run_check(*(tmp_path / f"case{i}" / "demo.json" for i in range(len(ERRORS))))
    assert result.returncode == 1
    missing = [case for case, line in expected if line not in result.stdout]
    assert not missing, result.stdout
    assert "ok (" not in result.stdout


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = demo(hooks={"auth": [_hook(timeout=0, match={"method": "X", "path": "y"})], "nope": []})
    path = write_container(tmp_path / "demo.json", data)
    lines = run_check(path).stdout.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "hooks.auth[0].match.method",
        "hooks.auth[0].match.path",
        "hooks.auth[0].timeout",
    ]


def test_symlink_escape_and_folder_with_duplicate_containers(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    write_container(folder / "a.json")
    write_container(folder / "b.json", demo(hooks={"auth": [_hook(script={"path": "/hooks/out/x.py"})]}))
    os.symlink(tmp_path, folder / "scripts" / "hooks" / "out")
    result = run_check(folder)
    assert result.returncode == 1
    assert (
        f"{folder / 'b.json'}: hooks.auth[0].script.path: resolves outside the scripts folder"
        in result.stdout
    )
    write_container(folder / "b.json")
    result = run_check(folder)
    assert f"{folder / 'b.json'}: container: 'demo' is also defined in {folder / 'a.json'}" in result.stdout


def test_missing_path(tmp_path: Path) -> None:
    result = run_check(tmp_path / "nope.json")
    assert result.returncode == 1
    assert result.stdout == f"{tmp_path / 'nope.json'}: no such file or folder\n"
