"""Subreaper containment: nothing a supervised process starts outlives it (stdlib only: used
by the per-run spawner, the worker supervisor and the proxy itself).

A child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`) gets every orphan of its subtree
re-parented to it, whatever the orphan did (`setsid`, double fork, `nohup … &`, daemonizing):
a process can leave its session and its process group, never its ancestry. So once the
supervised process has exited, every process still below the supervisor is one it started;
`kill_children` SIGKILLs the supervisor's children and reaps them, and each killed process's own
children are then re-parented to the supervisor and killed on the next round, until
`waitpid` says there is no child left. A SIGKILLed process cannot fork again, so the rounds
converge.

Two kinds of supervisor use this: the worker supervisor (`supervisor.py`, one per exec-session
worker or spawner) waits with every signal it cares about blocked and taken by `sigwaitinfo`, so
no handler runs at an awkward moment: SIGCHLD (its child may have exited), SIGTERM/SIGINT/SIGHUP
(tear everything down now; SIGTERM also when its own parent dies, via PR_SET_PDEATHSIG). The
per-run supervisors (`addon.scripts._Supervisor`) wait on a pidfd and their socket instead.

Limits: a process can leave the tree only through something outside it (a daemon it asks to
start processes: cron, systemd, a container runtime); and a supervisor that shares the script's
user can be killed by it (then the orphans go to the next subreaper up, which sweeps them).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SIGNALS = frozenset({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
# What Python sets to SIG_IGN at start-up and a child must not inherit (as subprocess does).
RESTORE_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)

_libc: ctypes.CDLL | None = None


def _prctl(option: int, value: int) -> bool:
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return bool(_libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Orphans of this process's subtree are re-parented here instead of to init."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Get `sig` when the parent goes (it may already be gone: then now)."""
    _prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def children(pid: int | None = None) -> list[int]:
    """The direct children of `pid` (default: this process), of all its threads."""
    pid = os.getpid() if pid is None else pid
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        for tid in tids:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(c) for c in f.read().split()]
        return found
    except FileNotFoundError:
        pass  # no CONFIG_PROC_CHILDREN: scan every process's parent instead
    except OSError:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{entry}/stat", "rb") as f:
                if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def kill_children(keep: Callable[[int], bool] | None = None) -> int:
    """SIGKILL and reap this process's children, and theirs as they are re-parented here,
    until none is left (`keep` spares the children it says yes to: they and what is below
    them are left alone). Returns how many were killed. Blocks only while killed processes die.
    """
    killed = 0
    while True:
        targets = [pid for pid in children() if keep is None or not keep(pid)]
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in targets:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        killed += len(targets)
        if targets:
            continue
        if keep is not None:
            return killed
        try:  # nothing listed: is there really no child left (a zombie, say)?
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return killed
        if pid == 0:
            # A child we did not see listed: wait for any child to change, then look again.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, 0)


def kill_other_sessions() -> int:
    """`kill_children` for the children in a session other than this process's: what our
    workers (each started in a session of its own) and the scripts under them left here."""
    own = os.getsid(0)
    return kill_children(keep=lambda pid: session_of(pid) in (own, None))


def close_fds_from(low: int) -> None:
    os.closerange(low, _max_fd())


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 1 << 16


def spawn(
    argv: list[str],
    env: dict[str, str] | None,
    user: tuple[int, int] | None = None,
    setsid: bool = False,
) -> int:
    """Start `argv` with this process's fds (the non-close-on-exec ones) and the blocked
    signals unblocked. As `user` ((uid, gid), no supplementary groups) when given: that needs a
    fork (a vfork child must not change credentials); otherwise `posix_spawn` (a vfork)."""
    env = dict(os.environ) if env is None else env
    if user is None:
        return os.posix_spawn(argv[0], argv, env, setsigmask=(), setsigdef=RESTORE_SIGNALS, setsid=setsid)
    uid, gid = user
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            os.close(ready_r)
            if setsid:
                os.setsid()
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            for sig in RESTORE_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.execve(argv[0], argv, env)
        except OSError as exc:
            os.write(ready_w, str(exc.errno or 1).encode())
        finally:
            os._exit(127)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        failed = ready.read()
    if failed:  # the exec did not happen: reap the child and say why, as posix_spawn would
        os.waitpid(pid, 0)
        errno = int(failed)
        raise OSError(errno, os.strerror(errno), argv[0])
    return pid


def wait_child(pid: int) -> int | None:
    """With SIGNALS blocked: the child's exit status (as `waitstatus_to_exitcode`), or None when
    a stop signal came first (the child is then still running, to be killed)."""
    while True:
        info = signal.sigwaitinfo(SIGNALS)
        if info.si_signo in STOP_SIGNALS:
            return None
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return os.waitstatus_to_exitcode(status)


def exit_like(code: int | None) -> None:
    """Exit with the child's status: its code, or death by its signal (no core dump)."""
    if code is not None and code < 0:
        with contextlib.suppress(OSError, ValueError):
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.signal(-code, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [-code])
            os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code if code is not None else 0)


def parse_user(spec: str | None) -> tuple[int, int] | None:
    if not spec:
        return None
    uid, gid = spec.split(":")
    return int(uid), int(gid)
