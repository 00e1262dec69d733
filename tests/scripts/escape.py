"""Hostile per-run hook in Python: leaves a process behind the way x-escape says, which records
its pid in x-pidfile; the hook answers 200 once the pid is recorded (so nothing is missed)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

event = json.load(sys.stdin)
headers = {name.lower(): value for name, value in event["request"]["headers"]}
how, pidfile = headers["x-escape"], headers["x-pidfile"]
LINGER = 'echo $$ >> "$0"; exec sleep 300'


def linger(keep_stdio: bool = False) -> None:
    """In the escaped process: record our pid, shrug off polite signals, stay."""
    if not keep_stdio:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        time.sleep(3600)


def fork(then) -> int:  # type: ignore[no-untyped-def]
    pid = os.fork()
    if pid == 0:
        try:
            then()
        finally:
            os._exit(0)
    return pid


def double_fork() -> None:
    fork(linger)  # the grandchild is orphaned when we exit at once


def daemon() -> None:
    os.setsid()
    fork(lambda: (os.chdir("/"), os.umask(0), linger()))


def setsid_only() -> None:
    os.setsid()
    linger()


if how == "setsid":
    fork(setsid_only)
elif how == "setsid-command":
    subprocess.Popen(["setsid", "sh", "-c", LINGER, pidfile], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
elif how == "double-fork":
    os.waitpid(fork(double_fork), 0)
elif how == "nohup":
    subprocess.Popen(["nohup", "sh", "-c", LINGER, pidfile], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
elif how == "daemon":
    os.waitpid(fork(daemon), 0)
elif how == "ignore-signals":
    fork(linger)
elif how == "hold-stdout":
    fork(lambda: linger(keep_stdio=True))
elif how == "kill-supervisor":
    fork(setsid_only)
else:
    sys.exit(f"unknown x-escape {how}")

while not (os.path.exists(pidfile) and Path(pidfile).read_text().endswith("\n")):
    time.sleep(0.005)
if how == "kill-supervisor":  # whoever waits for us: it shares our user, so we can
    os.kill(os.getppid(), signal.SIGKILL)
print(json.dumps({"response": {"status": 200, "body": f"python left one behind ({how})"}}))
