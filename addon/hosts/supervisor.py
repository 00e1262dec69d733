"""The supervisor of one worker process (started by `addon.sessions`, never imported).

    supervisor.py [--user UID:GID] -- COMMAND...

A child subreaper that starts COMMAND (an exec-session host or the per-run spawner) with its
own stdin, stdout, stderr and passed fds, lets go of them, and waits. When COMMAND exits, or
when the proxy asks (SIGTERM) or dies (PR_SET_PDEATHSIG), it SIGKILLs and reaps everything
still below it — what a `handle()` daemonized or `setsid`ed included — and exits like COMMAND.
With `--user`, COMMAND runs as that user and group (no supplementary groups) while the
supervisor keeps the proxy's: what COMMAND starts cannot signal it.
"""

from __future__ import annotations

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from addon.hosts.containment import (
    SIGNALS,
    become_subreaper,
    close_fds_from,
    die_with_parent,
    exit_like,
    kill_children,
    parse_user,
    spawn,
    wait_child,
)


def main(argv: list[str]) -> None:
    user = None
    if argv[:1] == ["--user"]:
        user, argv = parse_user(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    die_with_parent(os.getppid())
    become_subreaper()
    try:
        child = spawn(argv, None, user)
    except OSError as exc:
        print(f"cannot start {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        os._exit(127)
    # Its pipes are the child's alone now: EOF and broken pipes mean what they should.
    os.closerange(0, 3)
    close_fds_from(3)
    code = wait_child(child)
    kill_children()
    exit_like(code)


if __name__ == "__main__":
    main(sys.argv[1:])
