"""Exec-session worker for Python hook scripts (started by `addon.sessions`, never imported).

Loads each script once as a module (again when its stamp changes) and calls its
`handle(event)` for every run; `async def handle` runs concurrently with other runs, a plain
`def handle` runs on the worker's loop one at a time.

Frames are one JSON object per line. In, on stdin:
    {"op": "run", "id": N, "script": PATH, "stamp": S, "event": {...}}
    {"op": "cancel", "id": N}        a run the proxy gave up on (timed out, flow gone)
    {"op": "ping", "id": N}          answered at once unless the loop is stuck
Out, on the file descriptor given as argv[1]:
    {"id": N, "answer": {...} | null, "log": "..."}
    {"id": N, "error": "...", "kind": "load" | "handle", "log": "..."}
    {"id": N, "pong": true}
What a run writes to sys.stdout/sys.stderr is captured into its own "log"; anything else the
process writes (fd 1 and 2) is the worker's raw output, which the proxy keeps a tail of.
The worker exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.util
import inspect
import io
import json
import os
import stat
import sys
import traceback
from typing import Any

# Our frame loop, from this checkout; then out of the way: scripts import modules beside
# *them*, and an `addon` of their own if they have one.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, _ROOT)
from addon.hosts.frames import FrameServer  # noqa: E402

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") not in (_ROOT, os.path.dirname(__file__))]
for _name in [n for n in sys.modules if n == "addon" or n.startswith("addon.")]:
    del sys.modules[_name]

# The scripts folder's real path: the worker starts in it (see `Worker.start`).
ROOT = os.getcwd()
MAX_LOG = 64 * 1024
MAX_ANSWER = 1024 * 1024

NO_HANDLE = (
    "has no handle(event) function: a hook with execId runs in an exec session, which calls the "
    "script's handle(event) (define `def handle(event):` or `async def handle(event):` at top level)"
)


class RunLog:
    """What one run wrote, bounded: the first MAX_LOG characters, then a count of the rest."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def write(self, text: str) -> None:
        room = MAX_LOG - self.size
        if len(text) > room:
            self.dropped += len(text) - max(room, 0)
            text = text[: max(room, 0)]
        if text:
            self.parts.append(text)
            self.size += len(text)

    def text(self) -> str:
        tail = f"\n…[{self.dropped} more characters dropped]" if self.dropped else ""
        return "".join(self.parts) + tail


current_log: contextvars.ContextVar[RunLog | None] = contextvars.ContextVar("current_log", default=None)


class RoutedStream(io.TextIOBase):
    """sys.stdout / sys.stderr: inside a run, writes go to that run's log (asyncio tasks carry
    their own context, so concurrent runs never mix); outside one, to the worker's stderr."""

    def __init__(self, fallback: io.TextIOBase) -> None:
        self.fallback = fallback

    def write(self, text: str) -> int:
        log = current_log.get()
        if log is None:
            return self.fallback.write(text)
        log.write(text)
        return len(text)

    def flush(self) -> None:
        self.fallback.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fallback.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


class LoadError(Exception):
    pass


class Scripts:
    """Loaded scripts by path: the stamp they were loaded at, and their handle (or why not)."""

    def __init__(self) -> None:
        self.loaded: dict[str, tuple[str, Any]] = {}
        self.count = 0

    def handle_for(self, path: str, stamp: str, shown: str) -> Any:
        cached = self.loaded.get(path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, self._load(path, shown))
            self.loaded[path] = cached
        if isinstance(cached[1], LoadError):
            raise cached[1]
        return cached[1]

    def _load(self, path: str, shown: str) -> Any:
        name = os.path.basename(path)
        try:
            real, source = read_beneath(path, ROOT, shown)
        except LoadError as exc:
            return exc
        self.count += 1
        spec = importlib.util.spec_from_loader(f"proxy_hooks_script_{self.count}", None, origin=real)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        module.__file__ = real
        folder = os.path.dirname(real)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # as `python script.py` would: helpers beside it import
        try:
            exec(compile(source, real, "exec"), module.__dict__)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                raise
            traceback.print_exc()
            return LoadError(f"cannot load {name}: {type(exc).__name__}: {exc}")
        handle = getattr(module, "handle", None)
        if not callable(handle):
            return LoadError(f"{name} {NO_HANDLE}")
        return handle


def read_beneath(path: str, root: str, shown: str | None = None) -> tuple[str, bytes]:
    """The source of the file `path` opens, and its real path, which must be beneath `root`
    (the scripts folder's real path): checked on the open file, so a symlink swapped in
    between cannot make this load anything else."""
    shown = shown or path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise LoadError(f"cannot load {os.path.basename(path)}: {exc.strerror or exc}") from None
    try:
        real = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
        if not real.startswith(root.rstrip("/") + "/"):
            raise LoadError(f"script {shown} resolves outside the scripts folder")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LoadError(f"cannot load {os.path.basename(path)}: not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return real, f.read()
    finally:
        os.close(fd)


class Host:
    def __init__(self) -> None:
        self.scripts = Scripts()

    async def run(self, frame: dict[str, Any]) -> dict[str, Any]:
        log = RunLog()
        current_log.set(log)  # this task's own context: only this run's writes land in it
        reply: dict[str, Any] = {}
        try:
            shown = str(frame["event"].get("hook", {}).get("script", {}).get("path") or frame["script"])
            handle = self.scripts.handle_for(frame["script"], frame["stamp"], shown)
        except LoadError as exc:
            reply.update(error=str(exc), kind="load")
        else:
            try:
                answer = handle(frame["event"])
                if inspect.isawaitable(answer):
                    answer = await answer
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # a handler's sys.exit() fails its run only
                traceback.print_exc()
                reply.update(error=f"handle raised {type(exc).__name__}: {exc}", kind="handle")
            else:
                reply.update(_answer_fields(answer))
        reply["log"] = log.text()
        return reply


def _answer_fields(answer: Any) -> dict[str, Any]:
    if answer is not None and not isinstance(answer, dict):
        return {
            "error": "handle must return a dict (the protocol v1 answer) or None, "
            f"got {type(answer).__name__}",
            "kind": "handle",
        }
    try:
        size = len(json.dumps(answer, ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        return {"error": f"handle returned a value that is not JSON: {exc}", "kind": "handle"}
    except RecursionError:  # else the run would never answer, and time out
        return {"error": "bad answer from handle: answer nested too deep to encode as JSON", "kind": "handle"}
    if size > MAX_ANSWER:
        return {"error": f"output over {MAX_ANSWER // 1024} KiB", "kind": "handle"}
    return {"answer": answer}


def main() -> None:
    out_fd = int(sys.argv[1])
    sys.stdout = RoutedStream(sys.__stderr__)  # type: ignore[arg-type]
    sys.stderr = RoutedStream(sys.__stderr__)  # type: ignore[arg-type]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(FrameServer(out_fd, Host().run).serve())


if __name__ == "__main__":
    main()
