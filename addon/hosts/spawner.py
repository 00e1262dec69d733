"""The per-run spawner (started by `addon.sessions`, never imported by the proxy).

Hooks without execId run one process per run. Starting a process from the proxy costs the
proxy's own event loop 2–4 ms of CPU (fork/exec, three pipes, a child watcher); this worker does
it instead, with the very same `run_script`, and answers with the result:

    argv: NODE BASH TYPESCRIPT TYPESCRIPT_MISSING USER ANSWERS_FD
          (the proxy's interpreters, "" when not installed; what compiles TypeScript, "" when
          nothing can, and then why; the script user as UID:GID, "" for this worker's own)
    in:  {"op": "run", "id": N, "script": "/x.py", "root": SCRIPTS_FOLDER, "event": {...},
          "timeout": S, "env": {...}}   (env, optional: the hook's environment's variables)
    out: {"id": N, "exit_code": …, "stdout": base64, "stderr": base64, "duration_ms": …,
          "timed_out": …, "error": …}

The script is opened here, beneath the scripts folder (`open_script`), and its runtime reads
that open file, never the path again. Each run is handed to a supervisor of its own (a fork of
this process kept for reuse, a child subreaper) that kills whatever the script left behind when
it exits; this worker is a subreaper too, and sweeps what a killed supervisor let through.
Scripts get this worker's environment, which the proxy made minimal, plus the variables of the
hook's environment the frame carries (`env`); with a script user, the
scripts and their supervisors run as it, while this worker keeps the proxy's user (out of the
scripts' reach: it is what catches a killed supervisor's orphans).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, when not installed

from addon import scripts
from addon.hosts.containment import parse_user
from addon.hosts.frames import FrameServer
from addon.scripts import Runtimes, ScriptUnavailable, become_subreaper, open_script, run_script

RUNTIMES = Runtimes(sys.executable, None, None)
USER: tuple[int, int] | None = None


async def run(frame: dict[str, Any]) -> dict[str, Any]:
    try:
        opened = open_script(frame["root"], frame["script"])
    except ScriptUnavailable as exc:
        return _failed(str(exc))
    try:
        command = RUNTIMES.script_command(opened.real)
        result = await run_script(
            command,
            json.dumps(frame["event"]).encode(),
            frame["timeout"],
            Path(frame["root"]),
            {**os.environ, **frame.get("env", {})},
            opened,
            label=opened.real,
            user=USER,
        )
    except FileNotFoundError as exc:  # its runtime is not installed
        return _failed(str(exc))
    finally:
        os.close(opened.fd)
    return {
        "exit_code": result.exit_code,
        "stdout": base64.b64encode(result.stdout).decode(),
        "stderr": base64.b64encode(result.stderr).decode(),
        "duration_ms": result.duration_ms,
        "timed_out": result.timed_out,
        "error": result.error,
    }


def _failed(reason: str) -> dict[str, Any]:
    return {
        "exit_code": None,
        "stdout": "",
        "stderr": "",
        "duration_ms": 0.0,
        "timed_out": False,
        "error": reason,
    }


def main() -> None:
    global RUNTIMES, USER
    node, bash, typescript, typescript_missing, user = sys.argv[1:6]
    RUNTIMES = Runtimes(sys.executable, node or None, bash or None, typescript or None, typescript_missing)
    USER = parse_user(user)
    become_subreaper()
    scripts.SWEEP_ORPHANS = True
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(FrameServer(int(sys.argv[-1]), run).serve())


if __name__ == "__main__":
    main()
