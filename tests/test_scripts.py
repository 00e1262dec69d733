"""The script runner alone: bounded output, timeouts, processes that misbehave."""

from __future__ import annotations

import sys
from pathlib import Path

from addon.engine import judge
from addon.scripts import MAX_STDERR, MAX_STDOUT, minimal_env, run_script


async def run(tmp_path: Path, source: str, stdin: bytes = b"{}", timeout_s: float = 10) -> object:
    script = tmp_path / "s.py"
    script.write_text(source)
    return await run_script([sys.executable, str(script)], stdin, timeout_s, tmp_path, minimal_env())


async def test_stdout_flood_fails_the_run(tmp_path: Path) -> None:
    result = await run(tmp_path, "import sys\nwhile True: sys.stdout.write('x' * 65536)\n")
    assert result.error == f"output over {MAX_STDOUT // 1024} KiB"  # type: ignore[attr-defined]
    assert judge(result, "request", 1000).outcome == "failed"  # type: ignore[arg-type]


async def test_stderr_flood_is_drained_and_trimmed(tmp_path: Path) -> None:
    result = await run(tmp_path, "import sys\nsys.stderr.write('e' * 10_000_000)\nprint('{}')\n")
    assert result.exit_code == 0 and result.stdout.strip() == b"{}"  # type: ignore[attr-defined]
    assert len(result.stderr) == MAX_STDERR  # type: ignore[attr-defined]


async def test_script_that_ignores_a_large_stdin(tmp_path: Path) -> None:
    result = await run(tmp_path, "print('{}')\n", stdin=b"x" * 5_000_000)
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert judge(result, "request", 1000).outcome == "continued"  # type: ignore[arg-type]


async def test_timeout(tmp_path: Path) -> None:
    result = await run(tmp_path, "import time\ntime.sleep(30)\n", timeout_s=0.3)
    assert result.timed_out  # type: ignore[attr-defined]
    verdict = judge(result, "request", 300)  # type: ignore[arg-type]
    assert verdict.outcome == "timeout" and verdict.reason == "script timed out after 300 ms"


async def test_cannot_start(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    result = await run_script([str(script)], b"", 5, tmp_path, minimal_env())
    assert result.error is not None and result.error.startswith(f"cannot start {script}")
    assert judge(result, "request", 1000).outcome == "failed"


async def test_unicode_garbage_and_wrong_shapes(tmp_path: Path) -> None:
    cases = {
        "print('\\udcff')": "failed",
        "print('[1, 2]')": "failed",
        'print(\'{"block": "yes"}\')': "failed",
        'print(\'{"response": {"status": 1000}}\')': "failed",
        "print('{\"colour\": 1}')": "failed",
        "print('   ')": "continued",
        'print(\'{"response": {"body": {"a": 1}}}\')': "responded",
    }
    for source, outcome in cases.items():
        result = await run(
            tmp_path, f"import sys\nsys.stdout.reconfigure(errors='surrogateescape')\n{source}\n"
        )
        assert judge(result, "request", 1000).outcome == outcome, source  # type: ignore[arg-type]
