"""Running one hook script as its own process, without ever blocking the event loop.

- The runtime comes from the extension, by absolute path (a `python3` found on PATH may be a
  slow shim): `.py` the proxy's own Python, `.js/.mjs/.cjs` node, `.sh` bash, else the file.
- The file that runs is the file that was checked: `open_script` opens it beneath the scripts
  folder and checks the *opened* file's real path (`/proc/self/fd/N`), and the runtime is
  handed that open file (see `script_command`), never the path again.
- The script gets a minimal environment (none of the proxy's secrets).
- Contained: a small supervisor (a fork of this process, a child subreaper) starts the script
  and waits for it; when the script's own process exits, the supervisor kills and reaps every
  process still below it (daemonized, `setsid`, double-forked: see `addon/hosts/containment.py`),
  then exits. The run is the script's exit code and what it wrote; a descendant still holding
  its stdout is killed, not waited for. A timeout tears the same tree down.
- Output is bounded: stdout over `MAX_STDOUT` fails the run; stderr keeps its first
  `MAX_STDERR` bytes and the rest is drained, so a chatty script can never stall on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addon.hosts import containment
from addon.hosts.containment import become_subreaper as become_subreaper

MAX_STDOUT = 1024 * 1024
MAX_STDERR = 64 * 1024
_CHUNK = 64 * 1024
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# The opened script's fd number in the script's process (0-2 are its stdio, 3 the
# supervisor's status pipe, close-on-exec).
SCRIPT_FD = 4

# `python -c`: run the code read from the open script, as `python script.py` would (argv[0],
# __file__ and sys.path[0] are the script's real path and folder: helpers beside it import).
PY_BOOT = """import sys
def _boot():
    import os
    fd, path = int(sys.argv[1]), sys.argv[2]
    with os.fdopen(fd, "rb") as f:
        source = f.read()
    sys.argv[:] = [path]
    sys.path[0] = os.path.dirname(path)
    globals()["__file__"] = path
    return compile(source, path, "exec")
_code = _boot()
del _boot
exec(_code)
"""

# `node -e`: the same for node. CommonJS is compiled as the main module from the source read;
# an ES module (.mjs, or .js under "type": "module") is served to the loader from that source.
NODE_BOOT = r"""const fs = require('fs'), path = require('path'), Module = require('module');
const { pathToFileURL } = require('url');
const fd = Number(process.argv[1]), file = process.argv[2];
const source = fs.readFileSync(fd, 'utf8');
fs.closeSync(fd);
process.argv.splice(1, 2, file);
function packageType(dir) {
  for (;;) {
    try { return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).type; } catch {}
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}
const esm = file.endsWith('.mjs') || (!file.endsWith('.cjs') && packageType(path.dirname(file)) === 'module');
if (esm) {
  const url = pathToFileURL(file).href;
  const hooks = `let url, source;
export async function initialize(data) { url = data.url; source = data.source; }
export async function resolve(s, c, next) {
  return s === url ? { url, format: 'module', shortCircuit: true } : next(s, c);
}
export async function load(u, c, next) {
  return u === url ? { format: 'module', source, shortCircuit: true } : next(u, c);
}`;
  Module.register('data:text/javascript,' + encodeURIComponent(hooks), { data: { url, source } });
  import(url).catch((err) => { console.error(err); process.exitCode = 1; });
} else {
  const main = new Module(file, null);
  main.filename = file;
  main.id = '.';
  main.paths = Module._nodeModulePaths(path.dirname(file));
  process.mainModule = main;
  Module._cache[file] = main;
  main._compile(source, file);
  main.loaded = true;
}
"""


class ScriptUnavailable(Exception):
    """The script cannot run: not found, not a regular file, or outside the scripts folder."""


@dataclass(frozen=True)
class OpenedScript:
    fd: int
    real: str  # the opened file's real path, beneath the scripts folder's
    stat: os.stat_result


def open_script(scripts_root: Path | str, script_path: str) -> OpenedScript:
    """Open the hook's script beneath the scripts folder, and check the file that was opened.

    The path is followed as the kernel follows it (symlinks inside the folder are fine), then
    the open file's own real path (`/proc/self/fd/N`) must be beneath the folder's real path:
    the check is on the file that will run, so swapping a symlink in after it changes nothing.
    Close-on-exec (the supervisor hands it to the script) and non-blocking (a FIFO planted
    there must not hang the caller)."""
    rel = script_path.lstrip("/") or "."
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    root_fd = os.open(scripts_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        real_root = os.readlink(f"/proc/self/fd/{root_fd}")
        fd = os.open(rel, flags, dir_fd=root_fd)
    except OSError:
        raise ScriptUnavailable(
            f"script not found: {script_path} (looked in {Path(scripts_root).name}/)"
        ) from None
    finally:
        os.close(root_fd)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
        if not real.startswith(real_root.rstrip("/") + "/"):
            raise ScriptUnavailable(f"script {script_path} resolves outside the scripts folder")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ScriptUnavailable(
                f"script not found: {script_path} (looked in {Path(scripts_root).name}/)"
            )
    except BaseException:
        os.close(fd)
        raise
    return OpenedScript(fd, real, info)


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
        """By path (what `script_command` runs, for display and benchmarks)."""
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

    def script_command(self, real: str, fd: int = SCRIPT_FD) -> list[str]:
        """The command that runs the script open on `fd` (in the script's process), never
        its path: python and node read their source from the fd, bash sources
        `/proc/self/fd/N` (with $0 the real path), anything else is executed as
        `/proc/self/fd/N` (a shebang's interpreter reads it there too)."""
        name = runtime_name(real)
        if name == "python":
            return [self.python, "-c", PY_BOOT, str(fd), real]
        if name == "node":
            if self.node is None:
                raise FileNotFoundError("node is not installed (needed for JavaScript hooks)")
            return [self.node, "-e", NODE_BOOT, str(fd), real]
        if name == "bash":
            if self.bash is None:
                raise FileNotFoundError("bash is not installed (needed for .sh hooks)")
            return [self.bash, "-c", f". /proc/self/fd/{fd}", real]
        return [f"/proc/self/fd/{fd}"]


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
    command: list[str],
    stdin: bytes,
    timeout_s: float,
    cwd: Path,
    env: Mapping[str, str],
    script: OpenedScript | None = None,
    label: str | None = None,
    user: tuple[int, int] | None = None,
) -> RunResult:
    """Run `command` contained (see the module's docstring); `script`, when given, is the
    opened script file, which the script's process gets as `SCRIPT_FD`; `user` (uid, gid): the
    script runs as that user (no supplementary groups), its supervisor as this process's."""
    run = _ContainedRun(asyncio.get_running_loop(), stdin, label or command[-1])
    try:
        run.start(command, cwd, env, script, timeout_s, user)
    except OSError as exc:
        reason = f"cannot start {run.label}: {exc.strerror or exc}"
        return RunResult(None, b"", b"", run.elapsed(), error=reason)
    try:
        await asyncio.shield(run.done)
    except asyncio.CancelledError:
        # The run's flow went away (or the spawner is stopping): tear the tree down, and do not
        # leave before it is gone.
        run.stop()
        while not run.done.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(run.done)
        raise
    return run.done.result()


# Live per-run supervisors of this process, and whether orphans re-parented here (a supervisor
# was killed) are swept: only in a process that starts nothing else (the spawner).
SUPERVISORS: set[int] = set()
SWEEP_ORPHANS = False


class _ContainedRun:
    """One supervised run: the supervisor's pid, the pipes, and the answer when it is over."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stdin: bytes, label: str) -> None:
        self.loop = loop
        self.label = label
        self.started = time.monotonic()
        self.stdin = memoryview(stdin)
        self.done: asyncio.Future[RunResult] = loop.create_future()
        self.pid = 0
        self.fds: dict[str, int] = {}
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.status = bytearray()
        self.overflow: str | None = None
        self.timed_out = False
        self.timer: asyncio.TimerHandle | None = None

    def elapsed(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 3)

    def start(
        self,
        command: list[str],
        cwd: Path,
        env: Mapping[str, str],
        script: OpenedScript | None,
        timeout_s: float,
        user: tuple[int, int] | None,
    ) -> None:
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(4)]
        (in_r, in_w), (out_r, out_w), (err_r, err_w), (st_r, st_w) = pipes
        child = [in_r, out_w, err_w, st_w] + ([script.fd] if script is not None else [])
        parent = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, containment.SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the supervisor, which never returns
                _supervise(command, str(cwd), dict(env), child, parent, self.label, user)
        except OSError:
            for fd in (fd for pair in pipes for fd in pair):
                os.close(fd)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.pid = pid
        SUPERVISORS.add(pid)
        for fd in (in_r, out_w, err_w, st_w):
            os.close(fd)
        self.fds = {"stdin": in_w, "stdout": out_r, "stderr": err_r, "status": st_r}
        for fd in self.fds.values():
            os.set_blocking(fd, False)
        self.loop.add_reader(out_r, self._read, "stdout")
        self.loop.add_reader(err_r, self._read, "stderr")
        self.loop.add_reader(st_r, self._read, "status")
        self._feed()
        self.timer = self.loop.call_later(timeout_s, self._time_out)

    def stop(self) -> None:
        """Ask the supervisor to kill the script and everything it started, now."""
        if self.pid and not self.done.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)  # not reaped yet: the pid is still its own

    def _time_out(self) -> None:
        self.timed_out = True
        self.stop()

    def _feed(self) -> None:
        """Write the event; a script that does not read it is not an error."""
        fd = self.fds.get("stdin")
        if fd is None:
            return
        try:
            while self.stdin:
                self.stdin = self.stdin[os.write(fd, self.stdin) :]
        except BlockingIOError:
            self.loop.add_writer(fd, self._feed)
            return
        except OSError:
            pass  # EPIPE: it closed its stdin
        self._close("stdin")

    def _read(self, name: str) -> None:
        fd = self.fds.get(name)
        if fd is None:
            return
        try:
            while chunk := os.read(fd, _CHUNK):
                self._keep(name, chunk)
                if name == "stdout" and self.overflow:
                    self._close(name)
                    return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._close(name)  # EOF
        if name == "status":
            self._finish()

    def _keep(self, name: str, chunk: bytes) -> None:
        if name == "status":
            self.status += chunk
        elif name == "stderr":
            self.stderr += chunk[: max(MAX_STDERR - len(self.stderr), 0)]  # the rest drained
        elif len(self.stdout) + len(chunk) > MAX_STDOUT:
            self.stdout += chunk[: MAX_STDOUT - len(self.stdout)]
            self.overflow = f"output over {MAX_STDOUT // 1024} KiB"
            self.stop()
        else:
            self.stdout += chunk

    def _close(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is None:
            return
        if name == "stdin":
            self.loop.remove_writer(fd)
        else:
            self.loop.remove_reader(fd)
        os.close(fd)

    def _finish(self) -> None:
        """The supervisor closed its status pipe: it is exiting, and the script and everything
        below it is dead. What is still in the pipes was written; nothing more can be."""
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)  # its fds are closed: it is a zombie within microseconds
        SUPERVISORS.discard(self.pid)
        if self.timer is not None:
            self.timer.cancel()
        for name in ("stdout", "stderr"):
            self._read(name)
        for name in list(self.fds):
            self._close(name)
        self.done.set_result(self._result(self.status.decode("utf-8", "replace")))

    def _result(self, status: str) -> RunResult:
        stdout, stderr = bytes(self.stdout), bytes(self.stderr)
        if self.timed_out:
            return RunResult(None, b"", b"", self.elapsed(), timed_out=True)
        if status.startswith("exit "):
            return RunResult(int(status[5:]), stdout, stderr, self.elapsed(), error=self.overflow)
        if status.startswith("error "):
            return RunResult(None, stdout, stderr, self.elapsed(), error=status[6:])
        if status == "killed":
            stopped = self.overflow or "script was stopped"
            return RunResult(None, stdout, stderr, self.elapsed(), error=stopped)
        # Killed before it could tell (a script may signal its own supervisor when they share a
        # user): its orphans came here; nothing of a finished run may stay.
        if SWEEP_ORPHANS:
            containment.kill_children(keep=SUPERVISORS.__contains__)
        killed = "the script's supervisor was killed; its processes were"
        return RunResult(None, stdout, stderr, self.elapsed(), error=killed)


def _supervise(
    command: list[str],
    cwd: str,
    env: dict[str, str],
    fds: list[int],
    parent: int,
    label: str,
    user: tuple[int, int] | None,
) -> None:  # pragma: no cover - runs in the forked supervisor
    """The per-run supervisor: a fork of the caller, with SIGNALS blocked. Never returns.
    fds: the script's stdin, stdout, stderr, then the status pipe and the opened script."""
    try:
        containment.die_with_parent(parent)
        containment.become_subreaper()
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 16) for fd in fds]
        for target, fd in enumerate(high):
            os.dup2(fd, target, inheritable=target != 3)
        containment.close_fds_from(len(high))
        os.chdir(cwd)
        try:
            pid = containment.spawn(command, env, user, setsid=True)
        except OSError as exc:
            os.write(3, f"error cannot start {label}: {exc.strerror or exc}".encode())
            os._exit(0)
        os.closerange(0, 3)
        if len(fds) > SCRIPT_FD:
            os.close(SCRIPT_FD)
        code = containment.wait_child(pid)
        containment.kill_children()
        os.write(3, b"killed" if code is None else f"exit {code}".encode())
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            containment.kill_children()
            os.write(3, f"error supervisor failed: {exc!r}".encode())
    finally:
        os._exit(0)


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
