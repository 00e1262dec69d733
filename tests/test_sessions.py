"""The exec-session pool on its own, with real worker processes: answers and errors each run
can get, restart backoff, and the static missing-handle check."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from addon.scripts import RunResult, Runtimes, minimal_env
from addon.session_check import handle_problem
from addon.sessions import SessionKey, SessionPool, script_stamp

KEY = SessionKey("c", "unit", "python")


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


async def run(
    pool: SessionPool, script: Path, event: dict[str, object] | None = None, timeout_s: float = 5
) -> RunResult:
    return await pool.run(KEY, script, script_stamp(os.stat(script)), event or {}, timeout_s, script.parent)


@pytest.fixture
async def pool() -> object:
    sessions = SessionPool(Runtimes.detect(), minimal_env())
    yield sessions
    sessions.close()


async def test_answers_and_errors_of_one_run(pool: SessionPool, tmp_path: Path) -> None:
    script = write(
        tmp_path,
        "kinds.py",
        """
        import os, sys
        def handle(event):
            kind = event["kind"]
            print("log line", kind)
            if kind == "none":
                return None
            if kind == "list":
                return [1]
            if kind == "huge":
                return {"response": {"body": "x" * (2 * 1024 * 1024)}}
            if kind == "not-json":
                return {"response": {"body": object()}}
            if kind == "exit":
                sys.exit(4)
            return {"block": True, "reason": str(os.getpid())}
        """,
    )
    blocked = await run(pool, script, {"kind": "block"})
    assert blocked.answer == {"block": True, "reason": blocked.answer["reason"]}
    assert blocked.stderr == b"log line block\n"
    pid = blocked.answer["reason"]
    assert (await run(pool, script, {"kind": "none"})).answer is None
    assert (await run(pool, script, {"kind": "list"})).error == (
        "handle must return a dict (the protocol v1 answer) or None, got list"
    )
    assert (await run(pool, script, {"kind": "huge"})).error == "output over 1024 KiB"
    assert "not JSON" in str((await run(pool, script, {"kind": "not-json"})).error)
    assert (await run(pool, script, {"kind": "exit"})).error == "handle raised SystemExit: 4"
    # None of those cost the worker.
    assert (await run(pool, script, {"kind": "block"})).answer["reason"] == pid


async def test_a_script_that_cannot_load_says_why(pool: SessionPool, tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.py", "def handle(event:\n")
    result = await run(pool, broken)
    assert result.error is not None and result.error.startswith("cannot load broken.py: SyntaxError")
    assert pool.load_problems[("c", str(broken))] == result.error
    # Fixed on disk: loaded again, and the problem is cleared.
    broken.write_text("def handle(event):\n    return None\n")
    assert (await run(pool, broken)).error is None
    assert ("c", str(broken)) not in pool.load_problems


async def test_a_crashing_script_restarts_with_backoff(pool: SessionPool, tmp_path: Path) -> None:
    script = write(tmp_path, "crash.py", "import os\ndef handle(event):\n    os._exit(3)\n")
    first = await run(pool, script)
    assert first.error == "exec session 'unit' (python) exited with code 3"
    # Within the backoff, a run that cannot wait for it fails at once and says why.
    fast = await run(pool, script, timeout_s=0.05)
    assert fast.error is not None
    assert fast.error.startswith(
        "exec session 'unit' (python) is restarting after a failure (exited with code 3)"
    )
    # A run that can wait gets a new worker once the backoff is over.
    assert (await run(pool, script, timeout_s=5)).error == "exec session 'unit' (python) exited with code 3"
    [row] = pool.status()
    assert row["restarts"] == 1 and row["last_failure"] == "exited with code 3"


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("def handle(event):\n    pass\n", True),
        ("async def handle(event):\n    pass\n", True),
        ("handle = lambda event: None\n", True),
        ("from helpers import handle\n", True),
        ("from helpers import respond as handle\n", True),
        ("from helpers import *\n", True),
        ("try:\n    from fast import handle\nexcept ImportError:\n    def handle(event): pass\n", True),
        ("globals()['handle'] = print\n", True),
        ("def handler(event):\n    pass\n", False),
        ("class Hook:\n    def handle(self, event): pass\n", False),
        ("x = 1\n", False),
    ],
)
def test_static_python_check(tmp_path: Path, source: str, ok: bool) -> None:
    problem = handle_problem(write(tmp_path, "s.py", source))
    if ok:
        assert problem is None
    else:
        assert problem is not None and problem.startswith("s.py has no handle(event) function")


def test_static_check_of_syntax_errors_and_javascript(tmp_path: Path) -> None:
    assert handle_problem(write(tmp_path, "bad.py", "def (:\n")) == (
        "cannot load bad.py: SyntaxError: invalid syntax (line 1)"
    )
    assert handle_problem(write(tmp_path, "ok.js", "exports.handle = () => null;\n")) is None
    assert handle_problem(write(tmp_path, "ok.mjs", "export function handle() {}\n")) is None
    missing = handle_problem(write(tmp_path, "no.js", "module.exports = { greet() {} };\n"))
    assert missing is not None and missing.startswith("no.js has no exported handle(event) function")
    assert handle_problem(write(tmp_path, "x.sh", "echo\n")) is None  # not a session runtime
    assert handle_problem(tmp_path / "absent.py") is None  # "not found" is said elsewhere
