"""Exec sessions: long-lived workers that load a hook script once and call its `handle(event)`.

One worker process per (container, execId, runtime), started on first use. Runs are framed
JSON lines with request ids (see `addon/hosts/python_host.py`), so one worker carries many runs
at once. The proxy never trusts a worker to behave:

- every run has its own deadline; a run that misses it fails on its own, and the worker is
  pinged: one that does not answer within `STUCK_GRACE_S` (a sync handler in an endless loop)
  is killed;
- a worker that exits, floods its raw output or sends an oversized frame is killed, every run in
  flight on it fails at once with the reason, and the next run starts a new one after a backoff
  that doubles with each consecutive failure;
- a worker idle for `idle_s` exits; `close()` kills every worker (and whatever it started) and
  reaps them, so nothing outlives the proxy.

Each worker runs under its own supervisor (`addon/hosts/supervisor.py`, a child subreaper): when
the worker exits or is stopped, the supervisor kills and reaps everything still below it, what a
`handle()` daemonized or `setsid`ed included, then exits like the worker. The proxy stops a
worker by asking its supervisor (SIGTERM), never by killing the supervisor first. With a script
user, an exec-session worker runs as that user and its supervisor keeps the proxy's; the
spawner keeps the proxy's user too, and starts each per-run script as the script user.

Workers are plain `subprocess.Popen` children watched through pidfds, not asyncio subprocesses:
`close()` must reap synchronously from mitmproxy's sync `done` hook, which asyncio's child
watchers would race.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from addon.hosts.containment import children
from addon.protocol import TOO_DEEP
from addon.scripts import MAX_STDOUT, RunResult, Runtimes, reap_group, runtime_name

HOSTS = Path(__file__).parent / "hosts"
SESSION_RUNTIMES = ("python", "node")
DEFAULT_IDLE_S = 300.0
STUCK_GRACE_S = 1.0
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
# A run's captured log is bounded in the worker; its answer by MAX_STDOUT. Past this a frame is
# not something a well-behaved worker sends.
MAX_FRAME = MAX_STDOUT + 512 * 1024
RAW_OUTPUT_RATE = 256 * 1024  # bytes/s a worker may write outside runs, on average…
RAW_OUTPUT_BURST = 1024 * 1024  # …with bursts up to this
RAW_TAIL = 2048
STOP_GRACE_S = 1.0


@dataclass(frozen=True)
class SessionKey:
    container: str
    exec_id: str
    runtime: str
    # The hook's environment: its name, and a digest of its values (a changed value starts a
    # new worker; the old one idles out). Two hooks with one execId but different environments
    # run in different workers: a worker's environment is fixed when it starts.
    environment: str = ""
    env_digest: str = field(default="", compare=True, repr=False)

    def __str__(self) -> str:
        shown = f", environment {self.environment!r}" if self.environment else ""
        return f"exec session {self.exec_id!r} ({self.runtime}{shown})"


def session_runtime(script: Path | str) -> str | None:
    """The runtime that can host `script` in an exec session, or None (bash, executables).
    TypeScript runs in the node host, which compiles it (see addon/typescript.py)."""
    runtime = runtime_name(script)
    if runtime == "typescript":
        return "node"
    return runtime if runtime in SESSION_RUNTIMES else None


def script_stamp(stat: os.stat_result) -> str:
    """Changes whenever the file does: the worker reloads a script whose stamp changed."""
    return f"{stat.st_mtime_ns}-{stat.st_size}-{stat.st_ino}"


# The worker that starts per-run scripts (hooks without execId) on the proxy's behalf.
SPAWNER = SessionKey("*", "per-run spawner", "spawner")
SPAWN_GRACE_S = 2.0


def host_command(runtimes: Runtimes, runtime: str, user: tuple[int, int] | None = None) -> list[str]:
    """The worker's command, under its supervisor (which runs it as `user`, when set)."""
    if runtime == "python":
        host = [runtimes.python, str(HOSTS / "python_host.py")]
    elif runtime == "spawner":
        # The spawner keeps the proxy's user and runs each script (and its per-run supervisor)
        # as `user` itself: a script then cannot signal the spawner, which sweeps up after a
        # per-run supervisor a script killed.
        spec = f"{user[0]}:{user[1]}" if user is not None else ""
        host = [
            runtimes.python, str(HOSTS / "spawner.py"), runtimes.node or "", runtimes.bash or "",
            runtimes.typescript or "", runtimes.typescript_missing, spec,
        ]
        user = None
    else:
        node = runtimes.node_for("node")
        host = [node, *runtimes.node_flags(), str(HOSTS / "node_host.cjs"), runtimes.typescript or ""]
    # -I -S: the supervisor is stdlib only and starts in a few milliseconds, once per worker.
    supervisor = [runtimes.python, "-I", "-S", str(HOSTS / "supervisor.py")]
    if user is not None:
        supervisor += ["--user", f"{user[0]}:{user[1]}"]
    return [*supervisor, "--", *host]


class _Lines(asyncio.Protocol):
    """The worker's answer channel, split into frames."""

    def __init__(self, on_line: Callable[[bytes], None], on_overflow: Callable[[], None]) -> None:
        self.buffer = bytearray()
        self.on_line = on_line
        self.on_overflow = on_overflow

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        start = 0
        while (end := self.buffer.find(b"\n", start)) >= 0:
            self.on_line(bytes(self.buffer[start:end]))
            start = end + 1
        del self.buffer[:start]
        if len(self.buffer) > MAX_FRAME:
            self.buffer.clear()
            self.on_overflow()


ANSWER_READ = 64 * 1024


class _AnswerPipe:
    """The read end of a worker's answer pipe, read straight from the event loop's selector.

    asyncio's pipe transport reads 256 KiB at a time: glibc serves a request that size with
    mmap, and the short answer that comes back is then shrunk (mremap) and unmapped — three
    system calls for every answer. 64 KiB comes from the heap."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, lines: _Lines) -> None:
        self.loop, self.fd, self.lines = loop, fd, lines
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._ready)

    def _ready(self) -> None:
        try:
            data = os.read(self.fd, ANSWER_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.lines.data_received(data)
        else:  # the worker closed it: it is exiting (its pidfd says when it is gone)
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(RuntimeError, ValueError):
                self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class _Output(asyncio.Protocol):
    """The worker's raw stdout+stderr (not inside a run): kept as a tail, rate-limited."""

    def __init__(self, on_flood: Callable[[], None]) -> None:
        self.tail = b""
        self.tokens = float(RAW_OUTPUT_BURST)
        self.last = time.monotonic()
        self.on_flood = on_flood

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.tokens = min(RAW_OUTPUT_BURST, self.tokens + (now - self.last) * RAW_OUTPUT_RATE) - len(data)
        self.last = now
        self.tail = (self.tail + data)[-RAW_TAIL:]
        if self.tokens < 0:
            self.on_flood()


@dataclass
class _Pending:
    future: asyncio.Future[RunResult]
    script: str
    sent: float


@dataclass
class Worker:
    """One worker process and the runs in flight on it."""

    key: SessionKey
    command: list[str]
    cwd: Path
    env: Mapping[str, str]
    idle_s: float
    on_end: Callable[[Worker, bool], None]  # (worker, crashed)
    on_frame: Callable[[Worker, str, dict[str, Any]], None]  # (worker, script, answer frame)
    proc: subprocess.Popen[bytes] | None = None
    state: str = "starting"  # starting, ready, stopping, dead
    end_reason: str | None = None
    runs: int = 0
    started_at: float = field(default_factory=time.time)
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _next_id: int = 0
    _stdin: asyncio.WriteTransport | None = None
    _transports: list[asyncio.BaseTransport | _AnswerPipe] = field(default_factory=list)
    _output: _Output | None = None
    _pidfd: int | None = None
    _ping: int | None = None
    _idle: asyncio.TimerHandle | None = None
    _last_active: float = field(default_factory=time.monotonic)
    _worker_pid: int | None = None

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "ready")

    @property
    def pid(self) -> int | None:
        """The worker's own pid (its supervisor's while it is starting, or if it is gone)."""
        if self.proc is None:
            return None
        if self._worker_pid is None and self.alive:
            found = children(self.proc.pid) if self.proc.poll() is None else []
            if found:
                self._worker_pid = found[0]
        return self._worker_pid or self.proc.pid

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        answers_read, answers_write = os.pipe()
        try:
            # Blocking, but a vfork+exec: well under a millisecond, once per worker.
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                [*self.command, str(answers_write)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(answers_write,),
                cwd=self.cwd,
                env=dict(self.env),
                start_new_session=True,  # its own session and group
            )
        except OSError:
            os.close(answers_read)
            raise
        finally:
            os.close(answers_write)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        lines = _Lines(self._on_line, lambda: self._end("sent a frame over the size limit"))
        self._transports.append(_AnswerPipe(loop, answers_read, lines))
        output = self._output = _Output(lambda: self._end(_flood_reason()))
        transport, _ = await loop.connect_read_pipe(lambda: output, self.proc.stdout)
        self._transports.append(transport)
        stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, self.proc.stdin)
        self._stdin = stdin
        self._transports.append(stdin)
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(self.proc.pid)
            loop.add_reader(self._pidfd, self._on_exit)
        if self.state == "starting":
            self.state = "ready"

    async def call(self, label: str, payload: Mapping[str, Any], deadline: float) -> RunResult:
        """One run: `payload` joins the frame; `label` (the script) names it in load problems."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not self.alive or self._stdin is None:
            return _failed(started, f"{self.key} is not running: {self.end_reason}")
        self._next_id += 1
        run_id = self._next_id
        future: asyncio.Future[RunResult] = loop.create_future()
        self._pending[run_id] = _Pending(future, label, started)
        self._send({"op": "run", "id": run_id, **payload})
        self.runs += 1
        # A plain timer rather than asyncio.timeout(): this is on every run's path.
        timer = loop.call_at(deadline, _expire, future)
        try:
            result = await future
        except asyncio.CancelledError:  # the flow went away: the worker need not finish it
            self._give_up(run_id)
            raise
        finally:
            timer.cancel()
            self._last_active = time.monotonic()
            self._arm_idle_timer()
        if result is _TIMED_OUT:
            self._give_up(run_id)
            self._suspect()
            return RunResult(None, b"", b"", _ms(started), timed_out=True)
        return result

    def stop(self, reason: str) -> None:
        """Ask it to exit (stdin closes); killed if it has not after STOP_GRACE_S."""
        if not self.alive:
            return
        self.state = "stopping"
        self.end_reason = reason
        if self._stdin is not None:
            self._stdin.close()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(STOP_GRACE_S, self._end, reason)

    def kill_and_reap(self, reason: str) -> None:
        """Synchronous, for shutdown: nothing of it survives this call."""
        if self.alive:
            self.state, self.end_reason = "stopping", reason
        self._end(reason)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._kill_group()  # its supervisor did not finish in time
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=STOP_GRACE_S)
            _reap_group_now(self.proc.pid, time.monotonic() + STOP_GRACE_S)
        self._close_pidfd()

    def _kill_group(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    # --- internals ---

    def _send(self, frame: dict[str, Any]) -> None:
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(json.dumps(frame).encode() + b"\n")

    def _give_up(self, run_id: int) -> None:
        self._pending.pop(run_id, None)
        self._send({"op": "cancel", "id": run_id})

    def _arm_idle_timer(self) -> None:
        """One timer per worker, re-armed for what is left when it fires: runs only stamp a time."""
        if self._idle is None and self.alive:
            with contextlib.suppress(RuntimeError):
                self._idle = asyncio.get_running_loop().call_later(self.idle_s, self._idle_check)

    def _idle_check(self) -> None:
        self._idle = None
        left = self.idle_s - (time.monotonic() - self._last_active)
        if self._pending or left > 0.01:
            with contextlib.suppress(RuntimeError):
                self._idle = asyncio.get_running_loop().call_later(max(left, 0.05), self._idle_check)
            return
        self.stop(f"stopped after {self.idle_s:g} s idle")

    def _suspect(self) -> None:
        """A run timed out: is the worker still answering at all?"""
        if self._ping is not None or not self.alive:
            return
        self._next_id += 1
        self._ping = self._next_id
        self._send({"op": "ping", "id": self._ping})
        ping = self._ping

        def check() -> None:
            if self._ping == ping:
                self._end(
                    f"killed: it did not answer a ping within {STUCK_GRACE_S:g} s after a run timed "
                    "out (stuck, e.g. a sync handle in an endless loop)"
                )

        asyncio.get_running_loop().call_later(STUCK_GRACE_S, check)

    def _on_line(self, line: bytes) -> None:
        try:
            frame = _parse_frame(line)
            run_id = frame["id"]
        except (ValueError, KeyError, TypeError):
            self._end(f"sent a malformed frame: {line[:120]!r}")
            return
        if frame.get("pong"):
            if run_id == self._ping:
                self._ping = None
            return
        pending = self._pending.pop(run_id, None)
        if pending is None or pending.future.done():
            return  # an answer to a run that timed out or was cancelled
        self.on_frame(self, pending.script, frame)
        pending.future.set_result(_result_of(frame, _ms(pending.sent)))

    def _on_exit(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self._close_pidfd()
            code = self.proc.returncode
            how = f"killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
            self._end(how)
            reap_group(self.proc.pid)

    def _end(self, reason: str) -> None:
        """It is over for this worker: kill its group, fail what is in flight, tell the pool."""
        if self.state == "dead":
            return
        expected = self.state == "stopping"
        self.state = "dead"
        if not expected:
            self.end_reason = reason
        if self.proc is not None and self.proc.poll() is None:
            # Its supervisor kills the worker and everything below it, reaps them, then exits
            # (the pidfd reader reaps it); a supervisor that has not by then is killed outright.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(STOP_GRACE_S, self._kill_group)
        tail = self._output.tail.decode("utf-8", "replace").strip() if self._output else ""
        message = f"{self.key} {self.end_reason}" + (f"; its last output: {tail[-500:]}" if tail else "")
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_result(_failed(pending.sent, message))
        self._pending.clear()
        for transport in self._transports:
            transport.close()
        if self._idle is not None:
            self._idle.cancel()
        if self.proc is None or self.proc.poll() is not None:
            self._close_pidfd()  # else the pidfd reader reaps it once the kill has landed
        self.on_end(self, not expected)

    def _close_pidfd(self) -> None:
        if self._pidfd is None:
            return
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None

    def status(self) -> dict[str, Any]:
        return {
            "container": self.key.container,
            "exec_id": self.key.exec_id,
            "runtime": self.key.runtime,
            "environment": self.key.environment or None,
            "pid": self.pid,
            "state": self.state,
            "runs": self.runs,
            "in_flight": self.in_flight,
            "started_at": _iso(self.started_at),
        }


def _reap_group_now(pgid: int, deadline: float) -> None:
    """Block until every process of the killed group that was re-parented to us is reaped (the
    proxy is a child subreaper), or the deadline passes. Shutdown only."""
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG) is None:
                time.sleep(0.01)  # one is still dying
        except ChildProcessError:
            return  # none left that is ours


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _flood_reason() -> str:
    return (
        f"killed: it flooded its output (over {RAW_OUTPUT_BURST // 1024} KiB, faster than "
        f"{RAW_OUTPUT_RATE // 1024} KiB/s)"
    )


def _ms(since: float) -> float:
    return round((asyncio.get_running_loop().time() - since) * 1000, 3)


# Our hosts write the id first in every frame.
_FRAME_ID = re.compile(rb'\{\s*"id"\s*:\s*(\d+)\s*,')


def _parse_frame(line: bytes) -> Any:
    """A frame nested too deep for json.loads (a handle echoing a client's 2000-deep JSON) fails
    its own run, like any answer past the depth bound; without an id it is a malformed frame."""
    try:
        return json.loads(line)
    except RecursionError:
        found = _FRAME_ID.match(line)
        if found is None:
            raise ValueError("frame nested too deep") from None
        return {"id": int(found[1]), "error": f"bad answer from handle: {TOO_DEEP}", "kind": "handle"}


_TIMED_OUT = RunResult(None, b"", b"", 0.0, timed_out=True)


def _expire(future: asyncio.Future[RunResult]) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


def _failed(started: float, reason: str) -> RunResult:
    return RunResult(None, b"", b"", _ms(started), error=reason, session=True)


def _result_of(frame: dict[str, Any], duration_ms: float) -> RunResult:
    if "exit_code" in frame:  # the spawner's: a per-run script's own result
        return RunResult(
            frame["exit_code"],
            base64.b64decode(frame["stdout"]),
            base64.b64decode(frame["stderr"]),
            frame["duration_ms"],
            timed_out=frame["timed_out"],
            error=frame["error"],
        )
    log = str(frame.get("log") or "").encode()
    if "error" in frame:
        return RunResult(None, b"", log, duration_ms, error=str(frame["error"]), session=True)
    return RunResult(None, b"", log, duration_ms, answer=frame.get("answer"), session=True)


@dataclass
class _Health:
    """Per session: consecutive failures, and when the next worker may start."""

    failures: int = 0
    not_before: float = 0.0
    last_failure: str | None = None
    restarts: int = 0


class SessionPool:
    """The exec-session workers of one proxy (or one control API, for its dry runs)."""

    def __init__(
        self,
        runtimes: Runtimes,
        env: Mapping[str, str],
        idle_s: float = DEFAULT_IDLE_S,
        user: tuple[int, int] | None = None,
    ) -> None:
        self.runtimes = runtimes
        self.env = env
        self.idle_s = idle_s
        self.user = user  # (uid, gid) workers and scripts run as; None: the proxy's own
        self._workers: dict[SessionKey, Worker] = {}
        self._starting: dict[SessionKey, asyncio.Task[None]] = {}
        self._health: dict[SessionKey, _Health] = {}
        self.load_problems: dict[tuple[str, str], str] = {}  # (container, script) -> why it won't load

    async def run(
        self,
        key: SessionKey,
        script: Path,
        stamp: str,
        event: Mapping[str, Any],
        timeout_s: float,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        """One run of `script`'s handle(event) in the session's worker; `env`: the variables of
        the hook's environment (the key names it), on top of the pool's minimal environment."""
        if runtime_name(script) == "typescript" and self.runtimes.typescript is None:
            return _failed(asyncio.get_running_loop().time(), self.runtimes.typescript_missing)
        payload = {"script": str(script), "stamp": stamp, "event": event}
        return await self._call(key, str(script), payload, timeout_s, cwd, env)

    async def spawn(
        self,
        script: str,
        event: Mapping[str, Any],
        timeout_s: float,
        scripts_root: Path,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        """A per-run script (the hook's `script.path`), opened beneath `scripts_root` and started
        by the spawner worker (see `addon/hosts/spawner.py`): the open, fork, exec and pipes cost
        the spawner's CPU, not the proxy's. The spawner enforces the timeout; the proxy's own
        deadline is a safety net behind it."""
        payload = {"script": script, "root": str(scripts_root), "event": event, "timeout": timeout_s}
        if env:
            payload["env"] = dict(env)
        return await self._call(SPAWNER, script, payload, timeout_s + SPAWN_GRACE_S, scripts_root)

    def set_runtimes(self, runtimes: Runtimes) -> None:
        """Workers started from now on use `runtimes`; running ones are stopped (the next run
        starts a new one), as for `set_user`."""
        self.runtimes = runtimes
        for worker in list(self._workers.values()):
            worker.stop("stopped: the runtimes changed (hooks_tsx)")

    def set_user(self, user: tuple[int, int] | None) -> None:
        """Workers started from now on run as `user`; running ones are stopped (the next run
        starts a new one)."""
        if user == self.user:
            return
        self.user = user
        for worker in list(self._workers.values()):
            worker.stop("stopped: the script user changed")

    async def _call(
        self, key: SessionKey, label: str, payload: Mapping[str, Any], timeout_s: float, cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout_s
        worker = self._workers.get(key)
        if worker is not None and worker.state == "starting":
            worker = await self._worker(key, cwd, env)  # another run is starting it: wait for that
        elif worker is None or not worker.alive:
            health = self._health.setdefault(key, _Health())
            wait = health.not_before - loop.time()
            if wait > 0:
                if loop.time() + wait >= deadline:
                    return _failed(
                        started,
                        f"{key} is restarting after a failure ({health.last_failure}); next start in "
                        f"{wait:.1f} s",
                    )
                await asyncio.sleep(wait)
            try:
                worker = await self._worker(key, cwd, env)
            except OSError as exc:
                return _failed(started, f"cannot start {key}: {exc.strerror or exc}")
        return await worker.call(label, payload, deadline)

    async def _worker(self, key: SessionKey, cwd: Path, env: Mapping[str, str] | None = None) -> Worker:
        worker = self._workers.get(key)
        if worker is not None and worker.alive:
            starting = self._starting.get(key)
            if starting is not None:
                await asyncio.shield(starting)
            return worker
        worker = Worker(
            key,
            host_command(self.runtimes, key.runtime, self.user),
            cwd,
            {**self.env, **env} if env else self.env,
            self.idle_s,
            self._ended,
            self._answered,
        )
        self._workers[key] = worker
        task = asyncio.get_running_loop().create_task(worker.start())
        self._starting[key] = task
        try:
            await asyncio.shield(task)
        except OSError:
            worker.state = "dead"
            self._workers.pop(key, None)
            raise
        finally:
            self._starting.pop(key, None)
        if key in self._health and self._health[key].failures:
            self._health[key].restarts += 1
        return worker

    def _ended(self, worker: Worker, crashed: bool) -> None:
        if self._workers.get(worker.key) is worker:
            del self._workers[worker.key]
        if not crashed:
            return
        health = self._health.setdefault(worker.key, _Health())
        health.failures += 1
        health.last_failure = worker.end_reason
        delay = min(BACKOFF_FIRST_S * 2 ** (health.failures - 1), BACKOFF_MAX_S)
        with contextlib.suppress(RuntimeError):
            health.not_before = asyncio.get_running_loop().time() + delay

    def _answered(self, worker: Worker, script: str, frame: dict[str, Any]) -> None:
        problem_key = (worker.key.container, script)
        if frame.get("kind") == "load":
            self.load_problems[problem_key] = str(frame.get("error"))
            return
        self.load_problems.pop(problem_key, None)
        health = self._health.get(worker.key)
        if health is not None:
            health.failures = 0

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for key in sorted(set(self._workers) | set(self._health), key=str):
            worker = self._workers.get(key)
            health = self._health.get(key, _Health())
            if worker is not None:
                row = worker.status()
            else:
                row = {
                    "container": key.container,
                    "exec_id": key.exec_id,
                    "runtime": key.runtime,
                    "environment": key.environment or None,
                }
                row.update(pid=None, state="stopped", runs=0, in_flight=0, started_at=None)
            row.update(restarts=health.restarts, last_failure=health.last_failure)
            rows.append(row)
        return rows

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers.values() if w.pid is not None]

    def close(self) -> None:
        """Kill and reap every worker now (sync: mitmproxy's `done` hook is)."""
        for worker in list(self._workers.values()):
            worker.kill_and_reap("stopped with the proxy")
        self._workers.clear()
