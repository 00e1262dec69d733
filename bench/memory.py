"""`make bench-memory`: mitmdump's memory for one large upload through a hooked path.

For each case, a fresh mitmdump (reverse mode, the addon, one hook on every path) in front of a
private nginx; one warm-up request, then one upload of `--mib` MiB, then nothing. Printed from
/proc/<pid>/status: the resident size before (idle, warm), the peak (VmHWM) and the resident size
once it has settled after the upload (VmRSS, polled until it stops falling), and the peak's
growth over idle as a multiple of the body size. Not a test: nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.parts import Mitmdump, Pinning, Upstream, memory_kib, mitmproxy_line, scratch

HANDLE = "def handle(event):\n    return None\n"
CAT = "cat > /dev/null\n"
CASES: dict[str, tuple[str | None, str, str | None, str]] = {
    # label: (script name or None for bare mitmdump, source, execId, body kind)
    "bare mitmdump (no addon), text body": (None, "", None, "text"),
    "exec session (python), text body": ("h.py", HANDLE, "bench", "text"),
    "exec session (python), binary body": ("h.py", HANDLE, "bench", "binary"),
    "per-run bash (cat >/dev/null), text body": ("c.sh", CAT, None, "text"),
}
CHUNK = 1024 * 1024


def upload(port: int, size: int, binary: bool) -> int:
    """POST `size` bytes (ASCII, or bytes that are not UTF-8) and return the status."""
    piece = bytes(range(256)) * (CHUNK // 256) if binary else b"x" * CHUNK
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        head = f"POST /upload HTTP/1.1\r\nHost: bench.test\r\ncontent-length: {size}\r\n\r\n"
        sock.sendall(head.encode())
        left = size
        while left:
            sent = piece[: min(left, CHUNK)]
            sock.sendall(sent)
            left -= len(sent)
        answer = sock.recv(64)
    return int(answer.split()[1])


def settled(pid: int, deadline_s: float = 20.0) -> int:
    """VmRSS once it has stopped falling for a second (or at the deadline)."""
    deadline = time.monotonic() + deadline_s
    last, stable_since = memory_kib(pid)["VmRSS"], time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stable_since < 1.0:
        time.sleep(0.1)
        now = memory_kib(pid)["VmRSS"]
        if now < last - 1024:
            last, stable_since = now, time.monotonic()
    return memory_kib(pid)["VmRSS"]


def run_case(label: str, upstream: Upstream, pinning: Pinning, size: int, options: dict[str, str]) -> str:
    script, source, exec_id, kind = CASES[label]
    with scratch("proxy-hooks-bench-memory-") as home:
        if script is None:
            proxy = Mitmdump(upstream.url, home, pinning, addon=False)
            return _measured(label, proxy, size, kind == "binary")
        (home / "scripts").mkdir()
        (home / "scripts" / script).write_text(source)
        hook = {"match": {"method": "*", "path": "/**"}, "script": {"path": f"/{script}", "execId": exec_id},
                "timeout": 30000}  # fmt: skip
        doc = {
            "container": "bench",
            "file_version": 1,
            "services": {"s0": {"hosts": [f"127.0.0.1:{upstream.port}"]}},
            "hooks": {"s0": [hook]},
        }
        (home / "bench.json").write_text(json.dumps(doc))
        (home / "events").mkdir()
        options = {
            "hooks_config": str(home / "bench.json"),
            "hooks_events": str(home / "events" / "events.db"),  # not in the watched folder
            **options,
        }
        return _measured(
            label, Mitmdump(upstream.url, home, pinning, options=options), size, kind == "binary"
        )


def _measured(label: str, proxy: Mitmdump, size: int, binary: bool) -> str:
    try:
        upload(proxy.port, 1024, binary)  # warm: the worker starts
        idle = settled(proxy.pid)
        status = upload(proxy.port, size, binary)
        peak = memory_kib(proxy.pid)["VmHWM"]
        after = settled(proxy.pid)
    finally:
        proxy.stop()
    mib = size / 1024 / 1024
    growth = (peak - idle) / 1024 / mib
    return (
        f"| {label} | {status} | {idle / 1024:.0f} | {peak / 1024:.0f} | {growth:.2f}× | {after / 1024:.0f} "
        f"| {(after - idle) / 1024:+.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=100, help="upload size in MiB (default 100)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="OPTION=VALUE", help="a mitmdump option for every case"
    )
    args = parser.parse_args()
    options = dict(item.split("=", 1) for item in args.set)
    pinning = Pinning.plan()
    pinning.pin_self()
    print(
        f"{os.cpu_count()} CPUs; {mitmproxy_line()}; upload: {args.mib} MiB; options: {options or 'defaults'}"
    )
    print(
        "\n| hook | status | idle RSS, MiB | peak RSS (VmHWM), MiB | peak − idle, × body | RSS after, MiB "
        "| after − idle, MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    upstream = Upstream()
    try:
        for label in CASES:
            print(run_case(label, upstream, pinning, args.mib * 1024 * 1024, options), flush=True)
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
