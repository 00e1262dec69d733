"""`proxy-hooks check`: offline validation, every problem as `file: field.path: reason`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import DEMO, demo, proxy_hooks_command, write_container, write_scripts


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
        "hooks under a reject-listed service",
        demo(services={**DEMO["services"], "logs": {"hosts": ["x"]}}, hooks={"logs": [_hook()]}),
        "hooks.logs: service 'logs' is reject-listed (logs, proxy, workspaces): it may be declared "
        "under 'services', but it never has hooks (its flows pass untouched); remove the 1 hook listed here",
    ),
    (
        "script not deployed",
        demo(hooks={"auth": [_hook(script={"path": "/hooks/missing.py"})]}),
        "hooks.auth[0].script.path: no script /hooks/missing.py in the scripts folder (scripts/): "
        "deploy the file there first, or fix the path",
    ),
    (
        "exec-session script without handle",
        demo(hooks={"auth": [_hook(script={"path": "/hooks/no-handle.js", "execId": "s"})]}),
        "hooks.auth[0].script.path: no-handle.js has no exported handle(event) function",
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
        write_scripts(path.parent / "scripts", "/a.py")
        write_scripts(path.parent / "scripts", "/hooks/no-handle.js", source="module.exports = {};\n")
        expected.append((case, f"{path}: {line}"))
    result = run_check(*(tmp_path / f"case{i}" / "demo.json" for i in range(len(ERRORS))))
    assert result.returncode == 1
    missing = [case for case, line in expected if line not in result.stdout]
    assert not missing, result.stdout
    assert "ok (" not in result.stdout


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Field rules and the rules that need the whole file (and its scripts) run side by side:
    a file with five different problems gets five lines, in field order."""
    data = demo(
        services={**DEMO["services"], "logs": {"hosts": ["logs.demo.test"]}},
        hooks={
            "auth": [_hook(timeout=0, applies_to={"groups": ["ops"]}, script={"path": "/hooks/nope.py"})],
            "mail": [],
            "logs": [_hook()],
        },
    )
    path = write_container(tmp_path / "demo.json", data)
    write_scripts(tmp_path / "scripts", "/a.py")
    result = run_check(path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}: hooks.auth[0].applies_to.groups[0]: group 'ops' is not defined in container 'demo' "
        "(defined: admins, sre); add it under 'groups' first",
        f"{path}: hooks.auth[0].script.path: no script /hooks/nope.py in the scripts folder (scripts/): "
        "deploy the file there first, or fix the path",
        f"{path}: hooks.auth[0].timeout: must be 1-30000 ms, got 0",
        f"{path}: hooks.logs: service 'logs' is reject-listed (logs, proxy, workspaces): it may be "
        "declared under 'services', but it never has hooks (its flows pass untouched); remove the 1 "
        "hook listed here",
        f"{path}: hooks.mail: service 'mail' is not defined under 'services' (defined: auth, billing, logs)",
    ]


def test_no_pydantic_prose_in_any_reason(tmp_path: Path) -> None:
    """Every reason is in our words: wrong types, ranges, lengths, enums, times."""
    bad = demo(
        file_version=-1,
        scripts_dir="",
        services={"auth": {"hosts": "a"}, "billing": [], "bad name!": {}},
        groups={"g": {"users": [1]}},
        hooks={
            "auth": [
                _hook(
                    enabled="yes",
                    failure_mode="shut",
                    timeout=1.5,
                    applies_to={"groups": []},
                    created_at="yesterday",
                    description="x" * 1001,
                    script={"path": "/a.py", "execId": ""},
                ),
                "not a hook",
            ],
            "billing": {},
        },
    )
    path = write_container(tmp_path / "demo.json", bad)
    lines = run_check(path).stdout.splitlines()
    for line in lines:
        assert "Input should" not in line and "should have" not in line and "Field required" not in line
    reasons = {line.split(": ", 2)[1]: line.split(": ", 2)[2] for line in lines}
    expected = {
        "file_version": "must be at least 0, got -1",
        "scripts_dir": "must not be empty",
        "services.auth.hosts": "must be a list, got 'a'",
        "services.billing": "must be a JSON object, got a list",
        "services.bad name!": "name must be 1-63 characters of letters, digits, '_', '.', '-', starting "
        "with a letter or digit, got 'bad name!'",
        "groups.g.users[0]": "must be a string, got 1",
        "hooks.auth[0].enabled": "must be true or false, got 'yes'",
        "hooks.auth[0].failure_mode": "must be 'closed' or 'open', got 'shut'",
        "hooks.auth[0].timeout": "must be an integer, got 1.5",
        "hooks.auth[0].applies_to.groups": "must have at least 1 entry, got 0",
        "hooks.auth[0].created_at": "must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got 'yesterday'",
        "hooks.auth[0].description": "must be at most 1000 characters long, got 1001",
        "hooks.auth[0].script.execId": "must not be empty",
        "hooks.auth[1]": "must be a JSON object, got 'not a hook'",
        "hooks.billing": "must be a list, got an object",
    }
    assert {field: reasons.get(field) for field in expected} == expected


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


README = Path(__file__).parent.parent / "README.md"


def readme_block(after: str) -> list[str]:
    """The lines of the README from the line after `after` (a prompt, or a section's heading and
    then its first fence) to the closing fence."""
    lines = README.read_text().splitlines()
    start = lines.index(after) + 1
    if after.startswith("#"):
        start = lines.index("```", start) + 1
    return lines[start : lines.index("```", start)]


def test_the_readmes_check_example_reproduces_exactly(configs_copy: Path) -> None:
    """README, Command line: the hand edit it describes, then `proxy-hooks check configs/`."""
    path = configs_copy / "demo.json"
    data = json.loads(path.read_text())
    first = data["hooks"]["auth"][0]
    first.update(timeout=0, applies_to={"groups": ["ops"]}, script={"path": "/hooks/trace.py"})
    path.write_text(json.dumps(data, indent=2))
    block = readme_block("$ proxy-hooks check configs/")
    result = subprocess.run(
        [*proxy_hooks_command(), "check", "configs/"],
        capture_output=True, text=True, timeout=30, cwd=configs_copy.parent,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.splitlines() == block


def test_the_readmes_all_at_once_example_reproduces_exactly(configs_copy: Path) -> None:
    """README, Problems, all at once: the file those lines describe gets exactly them."""
    path = configs_copy / "demo.json"
    data = json.loads(path.read_text())
    data["file_version"] = -1
    data["hooks"]["auth"][0].update(timeout=0, applies_to={"groups": ["ops"]})
    data["hooks"]["auth"][1]["failure_mode"] = "shut"
    path.write_text(json.dumps(data, indent=2))
    block = readme_block("### Problems, all at once")
    result = subprocess.run(
        [*proxy_hooks_command(), "check", "demo.json"],
        capture_output=True, text=True, timeout=30, cwd=configs_copy,
    )  # fmt: skip
    assert result.stdout.splitlines() == block
