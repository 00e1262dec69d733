"""Running one hook script as its own process, without ever blocking the event loop.

- The runtime comes from the extension, by absolute path (a `python3` found on PATH may be a
  slow shim): `.py` the proxy's own Python, `.js/.mjs/.cjs` node, `.ts/.mts` node with its own
  type stripping or tsx's compiler (`addon.typescript`), `.sh` bash, else the file.
- The file that runs is the file that was checked: `open_script` opens it beneath the scripts
  folder and checks the *opened* file's real path (`/proc/self/fd/N`), and the runtime is
  handed that open file (see `script_command`), never the path again.
- The script gets a minimal environment (none of the proxy's secrets).
- Contained: a supervisor (a child subreaper, one run at a time, reused: see `_Supervisor`)
  starts the script and waits for it; when the script's own process exits, the supervisor kills
  and reaps every process still below it (daemonized, `setsid`, double-forked: see
  `addon/hosts/containment.py`), then reports. The run is the script's exit code and what it
  wrote; a descendant still holding its stdout is killed, not waited for. A timeout, a
  cancelled flow or too much output tears the same tree down.
- Output is bounded: stdout over `MAX_STDOUT` fails the run; stderr keeps its first
  `MAX_STDERR` bytes and the rest is drained, so a chatty script can never stall on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import select
import shutil
import signal
import socket
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from addon.hosts import containment
from addon.hosts.containment import become_subreaper as become_subreaper
from addon.typescript import INSTALL_HINT as TYPESCRIPT_HINT
from addon.typescript import SUFFIXES as TYPESCRIPT_SUFFIXES
from addon.typescript import compiler as typescript_compiler

MAX_STDOUT = 1024 * 1024
MAX_STDERR = 64 * 1024
_CHUNK = 64 * 1024
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# The opened script's fd number in the script's process (0-2 are its stdio, 3 the
# supervisor's status pipe, close-on-exec).
SCRIPT_FD = 4

# `python -c`: run the code read from the open script, as `python script.py` would (argv[0],
# __file__ and sys.path[0] are the script's real path and folder: helpers beside it import).
# exec() of the source, not compile(): the first compile() in a process costs ~1.5 ms (it sets
# up the ast module's types), a tenth of an interpreter start. Tracebacks name "<string>".
PY_BOOT = """import sys
def _boot():
    import os
    fd, path = int(sys.argv[1]), sys.argv[2]
    with os.fdopen(fd, "rb") as f:
        source = f.read()
    sys.argv[:] = [path]
    sys.path[0] = os.path.dirname(path)
    globals()["__file__"] = path
    return source
_source = _boot()
del _boot
exec(_source)
"""

# `node -e`: the same for node, with the loader the exec-session host uses (hosts/node_source.cjs):
# CommonJS is compiled as the main module from the source read; an ES module (.mjs, or .js under
# "type": "module") is served to the loader from that source. TypeScript (.ts, .mts) is compiled
# first, with the compiler `Runtimes.typescript` names (the last argument; empty for JavaScript).
NODE_SOURCE = Path(__file__).resolve().parent / "hosts" / "node_source.cjs"
NODE_BOOT = r"""const fs = require('fs');
const loader = require(process.argv[3]);
const fd = Number(process.argv[1]), file = process.argv[2], typescript = process.argv[4];
const read = fs.readFileSync(fd, 'utf8');
fs.closeSync(fd);
process.argv.splice(1, 4, file);
let compiled;
try {
  compiled = loader.javascriptOf(file, read, typescript);
} catch (err) {
  console.error(err.message);  // a TypeScript syntax error: file:line:column and what is wrong
  process.exit(1);
}
const { source, esm } = compiled;
if (esm) {
  loader.importFromSource(file, source).catch((err) => { console.error(err); process.exitCode = 1; });
} else {
  loader.compileCommonJS(file, source, true);
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
            raise ScriptUnavailable(f"script not found: {script_path} (looked in {Path(scripts_root).name}/)")
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
    # How node turns TypeScript into JavaScript ("node", or tsx's esbuild folder: see
    # addon.typescript); None, and why, when nothing here can.
    typescript: str | None = None
    typescript_missing: str = TYPESCRIPT_HINT

    @classmethod
    def detect(cls, tsx: str | None = None) -> Runtimes:
        """`tsx`: the hooks_tsx option (unset: the project's tsx, else one on PATH)."""
        node = shutil.which("node")
        compiler, missing = typescript_compiler(node, tsx)
        return cls(sys.executable, node, shutil.which("bash"), compiler, missing)

    def node_for(self, runtime: Runtime) -> str:
        """node, for a JavaScript or TypeScript hook; FileNotFoundError (the run fails, as its
        failure_mode says) saying what to install when it cannot run here."""
        if self.node is None:
            language = "TypeScript" if runtime == "typescript" else "JavaScript"
            raise FileNotFoundError(f"node is not installed (needed for {language} hooks)")
        if runtime == "typescript" and self.typescript is None:
            raise FileNotFoundError(self.typescript_missing)
        return self.node

    def script_command(self, real: str, fd: int = SCRIPT_FD) -> list[str]:
        """The command that runs the script open on `fd` (in the script's process), never
        its path: python and node read their source from the fd, bash sources
        `/proc/self/fd/N` (with $0 the real path), anything else is executed as
        `/proc/self/fd/N` (a shebang's interpreter reads it there too)."""
        name = runtime_name(real)
        if name == "python":
            return [self.python, "-c", PY_BOOT, str(fd), real]
        if name in ("node", "typescript"):
            node, compiler = self.node_for(name), self.typescript or ""
            return [node, *self.node_flags(), "-e", NODE_BOOT, str(fd), real, str(NODE_SOURCE), compiler]
        if name == "bash":
            if self.bash is None:
                raise FileNotFoundError("bash is not installed (needed for .sh hooks)")
            return [self.bash, "-c", f". /proc/self/fd/{fd}", real]
        return [f"/proc/self/fd/{fd}"]

    def node_flags(self) -> list[str]:
        """node's own type stripping is experimental and says so on stderr, which is the run's."""
        return ["--disable-warning=ExperimentalWarning"] if self.typescript == "node" else []


Runtime = Literal["python", "node", "typescript", "bash", "exec", "remote"]  # remote: addon.remote_hooks


@functools.lru_cache(maxsize=1024)  # asked for every run, of the few scripts hooks name
def runtime_name(script: Path | str) -> Runtime:
    """python, node, typescript, bash, or exec (run directly), from the extension."""
    suffix = Path(script).suffix.lower()
    if suffix == ".py":
        return "python"
    if suffix in (".js", ".mjs", ".cjs"):
        return "node"
    if suffix in TYPESCRIPT_SUFFIXES:
        return "typescript"
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
    remote: bool = False  # the body a hook service answered (addon.remote_hooks), in stdout

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()


# Whether orphans re-parented to this process (a supervisor was killed from below) are swept:
# only in a process that starts nothing else (the spawner).
SWEEP_ORPHANS = False
MAX_IDLE_SUPERVISORS = 8


class _Supervisor:
    """A per-run supervisor: a fork of this process, a child subreaper, reused run after run
    (a fork of a Python process costs 1–2 ms; handing a run to a waiting one, microseconds).
    One run at a time, so everything below it is that run's. It runs as the script user when
    there is one (set once, when it starts): a script can then signal it (not ptrace it: it
    changed credentials, so it is not dumpable), and if it is killed, what it supervised comes
    to this process, a subreaper too, which sweeps it (`SWEEP_ORPHANS`)."""

    idle: ClassVar[dict[tuple[int, int] | None, list[_Supervisor]]] = {}
    live: ClassVar[set[int]] = set()

    def __init__(self, user: tuple[int, int] | None) -> None:
        self.user = user
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the supervisor, which never returns
            ours.close()
            _supervisor_main(theirs.fileno(), user)
        theirs.close()
        ours.setblocking(False)
        self.pid, self.sock = pid, ours
        self.live.add(pid)

    @classmethod
    def take(cls, user: tuple[int, int] | None) -> _Supervisor:
        waiting = cls.idle.get(user)
        return waiting.pop() if waiting else cls(user)

    def give_back(self) -> None:
        waiting = self.idle.setdefault(self.user, [])
        if len(waiting) < MAX_IDLE_SUPERVISORS:
            waiting.append(self)
        else:  # it exits when its socket closes
            self.sock.close()
            self.reap()

    def reap(self) -> None:
        self.live.discard(self.pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


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
    script (and its supervisor) run as that user, with no supplementary groups."""
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


class _ContainedRun:
    """One run on a supervisor: the pipes, and the answer when it is over."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stdin: bytes, label: str) -> None:
        self.loop = loop
        self.label = label
        self.started = time.monotonic()
        self.stdin = memoryview(stdin)
        self.done: asyncio.Future[RunResult] = loop.create_future()
        self.supervisor: _Supervisor | None = None
        self.fds: dict[str, int] = {}
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.overflow: str | None = None
        self.timed_out = False
        self.stopped = False
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
        supervisor = _Supervisor.take(user)
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = pipes
        theirs = [in_r, out_w, err_w] + ([script.fd] if script is not None else [])
        request = {"argv": command, "env": dict(env), "cwd": str(cwd), "label": self.label}
        try:
            socket.send_fds(supervisor.sock, [json.dumps(request).encode()], theirs)
        except OSError:
            for fd in (fd for pair in pipes for fd in pair):
                os.close(fd)
            supervisor.sock.close()
            supervisor.reap()
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.supervisor = supervisor
        self.fds = {"stdin": in_w, "stdout": out_r, "stderr": err_r}
        for fd in self.fds.values():
            os.set_blocking(fd, False)
        self.loop.add_reader(out_r, self._read, "stdout")
        self.loop.add_reader(err_r, self._read, "stderr")
        self.loop.add_reader(supervisor.sock, self._status)
        self._feed()
        self.timer = self.loop.call_later(timeout_s, self._time_out)

    def stop(self) -> None:
        """Have the supervisor kill the script and everything it started, now."""
        if self.supervisor is not None and not self.done.done() and not self.stopped:
            self.stopped = True
            with contextlib.suppress(OSError):
                self.supervisor.sock.send(b"kill")

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

    def _keep(self, name: str, chunk: bytes) -> None:
        if name == "stderr":
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

    def _status(self) -> None:
        """The supervisor's word: the script exited (or was killed) and everything below it is
        dead and reaped. What is still in the pipes was written; nothing more can be."""
        supervisor = self.supervisor
        assert supervisor is not None
        try:
            status = supervisor.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            status = b""
        self.loop.remove_reader(supervisor.sock)
        if self.timer is not None:
            self.timer.cancel()
        if status:
            supervisor.give_back()
        else:
            supervisor.sock.close()
            supervisor.reap()
        for name in ("stdout", "stderr"):
            self._read(name)
        for name in list(self.fds):
            self._close(name)
        self.done.set_result(self._result(status.decode("utf-8", "replace")))

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
        # Killed before it could tell (a script may signal its supervisor when they share a
        # user): what it supervised came here; nothing of a finished run may stay.
        if SWEEP_ORPHANS:
            containment.kill_children(keep=_Supervisor.live.__contains__)
        killed = "the script's supervisor was killed; its processes were"
        return RunResult(None, stdout, stderr, self.elapsed(), error=killed)


def _supervisor_main(sock_fd: int, user: tuple[int, int] | None) -> None:  # pragma: no cover
    """Never returns. Between runs it has no child; during one, everything below it is that
    run's. It exits when its socket closes (the parent is gone, or has enough idle ones)."""
    try:
        containment.become_subreaper()
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2, 4):  # 4 too: received fds are then never SCRIPT_FD already
            os.dup2(null, fd, inheritable=False)
        os.dup2(sock_fd, 3, inheritable=False)
        containment.close_fds_from(5)
        if user is not None:
            os.setgroups([])
            os.setresgid(user[1], user[1], user[1])
            os.setresuid(user[0], user[0], user[0])
        sock = socket.socket(fileno=3)
        sock.setblocking(True)
        while True:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
            if not message:
                break
            if not fds:
                continue  # a "kill" that crossed the status of the run it was meant for
            sock.send(_supervise_one(json.loads(message), fds, sock))
    except BaseException:
        pass
    finally:
        with contextlib.suppress(BaseException):
            containment.kill_children()
        os._exit(0)


def _supervise_one(
    request: dict[str, Any], fds: list[int], sock: socket.socket
) -> bytes:  # pragma: no cover - runs in the supervisor
    """Start the script with `fds` as its stdin, stdout, stderr (and SCRIPT_FD), wait for it
    (or for "kill"), then kill and reap everything still below: the run's status."""
    actions: list[tuple[int, int, int]] = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(fds)]
    try:
        for fd in fds:
            os.set_inheritable(fd, False)
        os.chdir(request["cwd"])
        argv = request["argv"]
        pid = os.posix_spawn(
            argv[0],
            argv,
            request["env"],
            file_actions=[a if a[2] < 3 else (a[0], a[1], SCRIPT_FD) for a in actions],
            setsid=True,
            setsigdef=containment.RESTORE_SIGNALS,
        )
    except OSError as exc:
        return f"error cannot start {request['label']}: {exc.strerror or exc}".encode()
    finally:
        for fd in fds:
            os.close(fd)
    code: int | None = None
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        pidfd = None
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    while True:
        ready = poller.poll(None if pidfd is not None else 10)
        if any(fd == sock.fileno() for fd, _ in ready):  # "kill", or EOF: the parent is gone
            if not sock.recv(64):
                with contextlib.suppress(BaseException):
                    containment.kill_children()
                os._exit(0)
            break
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            code = os.waitstatus_to_exitcode(status)
            break
    if pidfd is not None:
        os.close(pidfd)
    containment.kill_children()
    return b"killed" if code is None else f"exit {code}".encode()


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
