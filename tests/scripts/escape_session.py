"""Hostile exec-session hook: handle() leaves a process behind the way x-escape says (see
escape.py), recorded in x-pidfile; x-escape: crash makes the worker exit."""

import os
import signal
import subprocess
import time
from pathlib import Path

LINGER = 'trap "" TERM HUP INT; echo $$ >> "$0"; exec sleep 300'


def _linger(pidfile):
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        time.sleep(3600)


def _fork(then):
    pid = os.fork()
    if pid == 0:
        try:
            then()
        finally:
            os._exit(0)
    return pid


def handle(event):
    headers = {name.lower(): value for name, value in event["request"]["headers"]}
    how = headers["x-escape"]
    if how == "crash":
        os._exit(3)
    pidfile = headers["x-pidfile"]
    if how == "setsid":
        subprocess.Popen(["setsid", "sh", "-c", LINGER, pidfile], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif how == "double-fork":
        os.waitpid(_fork(lambda: _fork(lambda: _linger(pidfile))), 0)
    elif how == "daemon":
        os.waitpid(_fork(lambda: (os.setsid(), _fork(lambda: _linger(pidfile)))), 0)
    elif how == "child":
        subprocess.Popen(["sh", "-c", LINGER, pidfile], stdin=subprocess.DEVNULL)
    while not (os.path.exists(pidfile) and Path(pidfile).read_text().endswith("\n")):
        time.sleep(0.005)
    return {"response": {"status": 200, "body": f"session left one behind ({how})"}}
