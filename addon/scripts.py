"""Running one hook script as its own process, without ever blocking the event loop.

- The runtime comes from the extension, by absolute path (a `python3` found on PATH may be a
  slow shim): `.py` the proxy's own Python, `.js/.mjs/.cjs` node, `.sh` bash, else the file.
- The script gets a minimal environment (none of the proxy's secrets) and its own session, so a
  timeout (or a script that leaves children behind) kills the whole process group.
- Output is bounded: stdout over `MAX_STDOUT` fails the run; stderr keeps its first
  `MAX_STDERR` bytes and the rest is drained, so a chatty script can never stall on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_STDOUT = 1024 * 1024
MAX_STDERR = 64 * 1024
_CHUNK = 64 * 1024
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Runtimes:
    """Interpreters by absolute path, looked up once."""

    python: str
    node: str | None
    bash: str | None

    @classmethod
    def detect(cls) -> Runtimes:
        return cls(sys.executable, shutil.which("node"), shutil.which("bash"))

    def command(self, script: Path) -> list[str]:
        suffix = script.suffix.lower()
        if suffix == ".py":
            return [self.python, str(script)]
        if suffix in (".js", ".mjs", ".cjs"):
            if self.node is None:
                raise FileNotFoundError("node is not installed (needed for JavaScript hooks)")
            return [self.node, str(script)]
        if suffix == ".sh":
            if self.bash is None:
                raise FileNotFoundError("bash is not installed (needed for .sh hooks)")
            return [self.bash, str(script)]
        return [str(script)]


def runtime_name(script: Path | str) -> str:
    """python, node, bash, or exec (run directly), from the extension."""
    suffix = Path(script).suffix.lower()
    if suffix == ".py":
        return "python"
    if suffix in (".js", ".mjs", ".cjs"):
        return "node"
    return "bash" if suffix == ".sh" else "exec"


def minimal_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": SAFE_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class RunResult:
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    duration_ms: float
    timed_out: bool = False
    error: str | None = None  # could not start, or output over the limit
    # Exec sessions: handle(event)'s return value, already decoded; no exit code.
    answer: Any = None
    session: bool = False

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()


async def run_script(
    command: list[str], stdin: bytes, timeout_s: float, cwd: Path, env: Mapping[str, str]
) -> RunResult:
    started = time.monotonic()

    def elapsed() -> float:
        return round((time.monotonic() - started) * 1000, 3)

    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        return RunResult(
            None, b"", b"", elapsed(), error=f"cannot start {command[-1]}: {exc.strerror or exc}"
        )

    overflow: list[str] = []

    def too_much() -> None:
        overflow.append(f"output over {MAX_STDOUT // 1024} KiB")
        _kill_group(proc.pid)

    assert proc.stdin and proc.stdout and proc.stderr
    try:
        async with asyncio.timeout(timeout_s):
            _, stdout, stderr = await asyncio.gather(
                _feed(proc.stdin, stdin),
                _read(proc.stdout, MAX_STDOUT, too_much),
                _read(proc.stderr, MAX_STDERR, None),
            )
            exit_code = await proc.wait()
    except TimeoutError:
        return RunResult(None, b"", b"", elapsed(), timed_out=True)
    finally:
        # Whatever happened (done, timed out, cancelled with its flow), nothing it started
        # outlives the run, and the child is reaped.
        _kill_group(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        reap_group(proc.pid)
    return RunResult(exit_code, stdout, stderr, elapsed(), error=overflow[0] if overflow else None)


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    """Write the event; a script that does not read it is not an error."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        pipe.write(data)
        await pipe.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        pipe.close()


async def _read(stream: asyncio.StreamReader, limit: int, on_overflow: Callable[[], None] | None) -> bytes:
    """Up to `limit` bytes; past it, `on_overflow` (stop the script) or drain and drop."""
    kept = bytearray()
    while chunk := await stream.read(_CHUNK):
        room = limit - len(kept)
        if len(chunk) > room:
            kept += chunk[:room]
            if on_overflow is not None:
                on_overflow()
                return bytes(kept)
            continue
        kept += chunk
    return bytes(kept)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def become_subreaper() -> bool:
    """Have orphaned descendants (a killed script's children) re-parented to this process
    instead of init, so `reap_group` can reap them. Without this, under an init that does not
    reap (some container and VM inits; or mitmdump itself as PID 1) they stay zombies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


PR_SET_CHILD_SUBREAPER = 36
REAP_ATTEMPTS = 40
REAP_INTERVAL_S = 0.05


def reap_group(pgid: int, attempts: int = REAP_ATTEMPTS) -> None:
    """Reap the killed group's orphans that were re-parented to us (never the leader, which
    asyncio has reaped already); retry briefly for those still dying, without blocking."""
    while True:
        try:
            reaped = os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return  # none of that group is our child: all reaped, or init has them
        if reaped is None:
            break  # some are not dead yet
    if attempts > 1:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(REAP_INTERVAL_S, reap_group, pgid, attempts - 1)
