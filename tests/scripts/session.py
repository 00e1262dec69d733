"""Exec-session test hook in Python: `handle(event)` does what the x-act header says."""

import asyncio
import os
import subprocess
import sys
import threading

LANG = "python"
VERSION = "v1"  # the reload test rewrites this line


def _headers(event):
    return {name.lower(): value for name, value in event["request"]["headers"]}


def _answer(**body):
    return {"response": {"status": 200, "headers": {"content-type": "application/json"},
                         "body": {"pid": os.getpid(), "lang": LANG, "version": VERSION, **body}}}


_gatherings: dict[str, tuple[list[int], asyncio.Event]] = {}


async def _gather(name, count):
    """Wait until `count` runs of the same gathering are in flight at once: only a worker that
    runs them concurrently ever gets there."""
    arrived, everyone = _gatherings.setdefault(name, ([], asyncio.Event()))
    arrived.append(1)
    if len(arrived) >= count:
        everyone.set()
    await everyone.wait()


async def handle(event):
    headers = _headers(event)
    act = headers.get("x-act", "continue")
    if act == "continue":
        print(f"trace from {LANG} session", file=sys.stderr)
        return None
    if act == "whoami":
        return _answer()
    if act == "gather":
        await _gather(headers["x-gathering"], int(headers["x-count"]))
        return _answer()
    if act == "sleep":
        await asyncio.sleep(float(headers["x-sleep"]))
        return _answer(slept=headers["x-sleep"])
    if act == "block":
        return {"block": True, "reason": f"blocked by {LANG} session"}
    if act == "spin":
        while True:  # a sync endless loop: the worker is stuck
            pass
    if act == "crash":
        os._exit(3)
    if act == "raise":
        raise ValueError("no such user")
    if act == "flood":
        def flood():
            chunk = b"x" * 65536
            while True:
                os.write(2, chunk)
        threading.Thread(target=flood, daemon=True).start()
        await asyncio.sleep(30)
    if act == "child":
        child = subprocess.Popen(["sleep", "300"])  # noqa: ASYNC220 - a test script
        with open(headers["x-pidfile"], "w") as f:  # noqa: ASYNC230
            f.write(f"{os.getpid()} {child.pid}")
        return _answer(child=child.pid)
    if act == "env":
        return {"response": {"status": 200, "body": dict(os.environ)}}
    return {"response": {"status": 400, "body": f"unknown act {act}"}}
