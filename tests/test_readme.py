"""The README's walk-through of the control API is a test: its `<!-- walkthrough -->` blocks run,
in order, in one bash, against what `make run` starts (tests/demo_run.py) on free ports given to
the commands as PROXY and API, and every command's answer is checked: the API's, and the
proxy's, which must show each write on the next flow.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.demo_run import CONFIGS, DemoServices, ProxyHooksRun
from tests.harness import free_port

README = CONFIGS.parent / "README.md"
MARK = "<!-- walkthrough -->"
SEP = "\x1f"  # ends a command's output, then its exit status
COMMAND_DEADLINE_S = 60.0
MOCK, EDIT = "01jd2x9k2b3c4d5e6f7g8h9j3p", "01jd2x9k2b3c4d5e6f7g8h9j4q"  # the demo's billing hooks


def walkthrough(text: str) -> list[str]:
    """The commands of the marked blocks, in order: one per line, a line ending in a backslash
    continued on the next; blank lines and comment lines are not commands."""
    blocks = re.findall(re.escape(MARK) + r"\s*```sh\n(.*?)```", text, re.S)
    commands: list[str] = []
    pending = ""
    for line in "".join(blocks).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            commands.append(pending)
            pending = ""
    assert not pending, f"a command ends in a backslash: {pending}"
    return commands


@dataclass
class Answer:
    command: str
    output: str

    def json(self) -> Any:
        return json.loads(self.output)

    def stream(self) -> list[Any]:
        """Several JSON values one after the other (jq's `.[]`)."""
        decoder, values, rest = json.JSONDecoder(), [], self.output.strip()
        while rest:
            value, end = decoder.raw_decode(rest)
            values.append(value)
            rest = rest[end:].lstrip()
        return values


class Shell:
    """One bash for the whole walk-through, so that what one command defines (a variable, a
    function) is there for the next; each command runs when the test asks, so the test can look
    at the hooks file between two of them."""

    def __init__(self, env: dict[str, str], cwd: Path):
        self.proc = subprocess.Popen(
            ["bash"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=cwd,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def run(self, command: str, deadline_s: float = COMMAND_DEADLINE_S) -> Answer:
        """Its output and stderr; fails unless it exits 0 within the deadline. Its stdin is
        /dev/null: bash reads the next commands from its own."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{{ {command}}} </dev/null 2>&1; printf '{SEP}%d{SEP}' $?\n".encode())
        self.proc.stdin.flush()
        out = b""
        deadline = time.monotonic() + deadline_s
        while out.count(SEP.encode()) < 2:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and self.selector.select(remaining), f"{command}did not finish:\n{out!r}"
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            assert chunk, f"bash exited during {command}{out!r}"
            out += chunk
        output, status, _ = out.decode().split(SEP)
        assert status == "0", f"{command}exited with {status}:\n{output}"
        return Answer(command, output)

    def close(self) -> None:
        self.selector.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """`make run`'s configuration on free ports; the environment the commands run in."""
    home = tmp_path_factory.mktemp("make-run")
    proxy_port, api = free_port(), f"127.0.0.1:{free_port()}"
    services = DemoServices(home / "run", proxy_port)
    try:
        proxy = ProxyHooksRun(services.folder, proxy_port, api, home / "confdir")
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}  # ours only
        yield {**env, "PROXY": f"127.0.0.1:{proxy_port}", "API": api}, services.config
        proxy.stop()
    finally:
        services.stop()


def test_the_walkthrough_uses_scripts_the_demo_has() -> None:
    commands = "".join(walkthrough(README.read_text()))
    scripts = re.findall(r'"script": \{"path": "/([^"]+)"', commands)
    assert scripts, "the walk-through writes no hook"
    for script in scripts:
        assert (CONFIGS / "scripts" / script).is_file(), f"{script} is not in configs/scripts"


def test_the_walkthrough_runs_in_order_and_each_write_shows_on_the_next_flow(
    make_run: tuple[dict[str, str], Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env, config = make_run
    commands = iter(walkthrough(README.read_text()))
    shell = Shell(env, tmp_path)
    request.addfinalizer(shell.close)

    def step(fragment: str) -> Answer:
        """Run the next command, which must be the one the test expects."""
        command = next(commands)
        assert fragment in command, f"expected a command with {fragment!r}, got {command}"
        return shell.run(command)

    def billing() -> list[dict[str, Any]]:
        hooks: list[dict[str, Any]] = json.loads(config.read_text())["hooks"]["billing"]
        return hooks

    for setup in ("PROXY=", "API=", "H=", "J=", "etag()"):
        assert step(setup).output == ""
    assert step("map_values(length)").json() == {"auth": 4, "billing": 2}
    assert step("$H/billing | jq").stream() == [
        {"id": MOCK, "position": 0, "path": "/v1/invoices/demo"},
        {"id": EDIT, "position": 1, "path": "/v1/invoices"},
    ]
    one = step(f"$H/billing/{MOCK}").json()
    assert (one["id"], one["script"]["path"]) == (MOCK, "/hooks/mock-invoice.py")
    assert step("/v1/payments/7").json() is None

    # POST: appended, live for the next flow.
    created = step("-X POST $H/billing").json()
    assert (created["statusCode"], created["message"]) == (201, "Hook created successfully")
    hook = created["data"]["hook"]
    assert (hook["position"], hook["match"]["path"]) == (2, "/v1/payments/**")
    assert created["data"]["etag"] == "file:v2"
    assert [h["id"] for h in billing()] == [MOCK, EDIT, hook["id"]]
    assert step("ID=$(").output == ""
    assert step("/v1/payments/7").json() == "add-header.js saw GET /v1/payments/7"

    # PATCH: replaced in place, still after edit-response.js.
    updated = step("-X PATCH $H/billing/$ID ").json()
    assert (updated["statusCode"], updated["message"]) == (200, "Hook updated successfully")
    assert (updated["data"]["hook"]["id"], updated["data"]["hook"]["position"]) == (hook["id"], 2)
    assert billing()[2]["match"]["path"] == "/v1/**"
    assert step("/v1/refunds/3").json() == "add-header.js saw GET /v1/refunds/3"
    assert step("/v1/invoices | jq .edited_by").json() == "edit-response.js"

    # Move: first now, so it wins for /v1/invoices.
    moved = step("$ID/position").json()
    assert (moved["message"], moved["data"]["hook"]["position"], moved["data"]["etag"]) == (
        "Hook moved successfully", 0, "file:v4"
    )  # fmt: skip
    assert [h["id"] for h in billing()] == [hook["id"], MOCK, EDIT]
    assert step("/v1/invoices | jq '.headers").json() == "add-header.js saw GET /v1/invoices"

    # A stale ETag: 412 with the current one; then the delete with a fresh one.
    stale = step("If-Match: file:v1").output
    head, _, body = stale.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 412 ") and "\nETag: file:v4" in head, stale
    assert json.loads(body)["code"] == "PRECONDITION_FAILED"
    assert len(billing()) == 3
    removed = step("-X DELETE $H/billing/$ID").json()
    assert (removed["statusCode"], removed["message"], removed["data"]["etag"]) == (
        200, "Hook removed successfully", "file:v5"
    )  # fmt: skip
    assert [h["id"] for h in billing()] == [MOCK, EDIT]
    assert step("/v1/invoices | jq .edited_by").json() == "edit-response.js"

    # Clear, then put back in one write.
    assert step("> billing-hooks.json").output == ""
    saved = json.loads((tmp_path / "billing-hooks.json").read_text())
    assert [h["id"] for h in saved["hooks"]] == [MOCK, EDIT]
    assert step("-X DELETE $H/billing ").json() == 2
    assert billing() == []
    assert step("/v1/invoices/demo | jq .service").json() == "billing"
    assert step("-X PUT $H/billing").json() == 2
    assert [h["id"] for h in billing()] == [MOCK, EDIT]
    assert step("/v1/invoices/demo | jq .mocked_by").json() == "mock-invoice.py"
    assert step("/healthz").json() == "ok"
    assert next(commands, None) is None, "a command of the walk-through is not checked"


def test_the_readme_documents_issue_14s_endpoints_fields_and_commands() -> None:
    """Each user-visible part of issue 14 has its place in the manual (the sections named)."""
    text = README.read_text()
    for documented in (
        "| `GET /api/v1/containers/{id}` |",  # the container document (export reads it)
        "| `PUT …/hooks` |",  # apply a whole container
        "| `PATCH …/hooks` |",  # seed 002's bulk upsert
        "| `POST /events` |",  # notes
        "`GET /api/v1/protocol`",
        "### Hooks kept in git, applied from CI: `apply` and `export`",
        "proxy-hooks apply hooks/demo.json --api",
        "`changed=true\\|false`",  # the runs' and events' filter
        "**What each run changed.**",
        "**failed after its answer was applied**",
        "`eventsByKind`",
        "`recentClients`",
        "`hook_version`",
        "by its id or its name",  # a note's hookId
        "| `name` |",  # the hook field
        "| `version` |",
    ):
        assert documented in text, documented
