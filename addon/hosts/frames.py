"""The worker side of the exec-session frame protocol (see `python_host.py` for the frames):
requests on stdin, answers on the file descriptor the proxy passed. Shared by the Python
session host and the per-run spawner; stdlib only, as both start with a bare interpreter."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

MAX_FRAME_IN = 512 * 1024 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


class FrameServer:
    def __init__(self, out_fd: int, handler: Handler) -> None:
        self.out_fd = out_fd
        self.handler = handler
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def send(self, frame: dict[str, Any]) -> None:
        data = memoryview(json.dumps(frame, ensure_ascii=False).encode() + b"\n")
        while data:
            written = os.write(self.out_fd, data)
            data = data[written:]

    async def serve(self) -> None:
        """Until stdin closes (the proxy stopped us, or is gone)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_FRAME_IN)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        while line := await reader.readline():
            frame = json.loads(line)
            op, run_id = frame.get("op"), frame.get("id")
            if op == "ping":
                self.send({"id": run_id, "pong": True})
            elif op == "cancel":
                task = self.tasks.get(run_id)
                if task is not None:
                    task.cancel()
            elif op == "run":
                task = loop.create_task(self._run(frame))
                self.tasks[run_id] = task
                task.add_done_callback(functools.partial(self._forget, run_id))
        for task in self.tasks.values():
            task.cancel()

    def _forget(self, run_id: int, _: asyncio.Task[None]) -> None:
        self.tasks.pop(run_id, None)

    async def _run(self, frame: dict[str, Any]) -> None:
        try:
            reply = await self.handler(frame)
        except asyncio.CancelledError:
            return  # the proxy gave up on this run: nobody waits for its answer
        if reply is not None:
            self.send({"id": frame["id"], **reply})
