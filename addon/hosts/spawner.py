"""The per-run spawner (started by `addon.sessions`, never imported by the proxy).

Hooks without execId run one process per run. Starting a process from the proxy costs the
proxy's own event loop 2–4 ms of CPU (fork/exec, three pipes, a child watcher); this worker does
it instead, with the very same `run_script`, and answers with the result:

    in:  {"op": "run", "id": N, "command": [...], "event": {...}, "timeout": S, "cwd": PATH}
    out: {"id": N, "exit_code": …, "stdout": base64, "stderr": base64, "duration_ms": …,
          "timed_out": …, "error": …}

Scripts get this worker's environment, which the proxy made minimal. It is a child subreaper,
so what a killed script leaves behind is reaped here.
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

from addon.hosts.frames import FrameServer
from addon.scripts import become_subreaper, run_script


async def run(frame: dict[str, Any]) -> dict[str, Any]:
    result = await run_script(
        frame["command"],
        json.dumps(frame["event"]).encode(),
        frame["timeout"],
        Path(frame["cwd"]),
        os.environ,
    )
    return {
        "exit_code": result.exit_code,
        "stdout": base64.b64encode(result.stdout).decode(),
        "stderr": base64.b64encode(result.stderr).decode(),
        "duration_ms": result.duration_ms,
        "timed_out": result.timed_out,
        "error": result.error,
    }


def main() -> None:
    become_subreaper()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(FrameServer(int(sys.argv[1]), run).serve())


if __name__ == "__main__":
    main()
