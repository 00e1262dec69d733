"""The bench's moving parts: CPU pinning, a C upstream (a private nginx), a C load generator
(wrk), mitmdump itself, and the figures read from /proc.

Pinning: mitmdump gets one CPU of its own and everything else (this process, wrk, the upstream,
the hook workers mitmdump starts) the others, so that mitmdump's own CPU time per request decides
its throughput and the figures repeat from one round to the next. On a 1-CPU machine nothing can
be pinned: the bench says so and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port, interrupt, wait_for  # noqa: E402

ADDON = ROOT / "addon" / "proxy_hooks.py"
ANSWER = b"x" * 100  # what the upstream answers: 100 bytes
STARTUP_DEADLINE_S = 30.0


# --- CPUs ---


@dataclass(frozen=True)
class Pinning:
    """mitmdump's CPU and everyone else's; both None when the machine has one CPU."""

    proxy: frozenset[int] | None
    others: frozenset[int] | None

    @classmethod
    def plan(cls) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls(frozenset(cpus[-1:]), frozenset(cpus[:-1]))

    def describe(self) -> str:
        if self.proxy is None or self.others is None:
            return (
                "not pinned: this machine has one CPU, so mitmdump shares it with the load and the upstream"
            )
        return (
            f"mitmdump pinned to CPU {_cpus(self.proxy)}; wrk, the upstream and the hook workers to "
            f"CPU {_cpus(self.others)}"
        )

    def pin_self(self) -> None:
        """This process (and so every child it starts but mitmdump) to the other CPUs."""
        if self.others is not None:
            os.sched_setaffinity(0, self.others)

    def proxy_preexec(self) -> Callable[[], None] | None:
        if self.proxy is None:
            return None
        proxy = self.proxy
        return lambda: os.sched_setaffinity(0, proxy)

    def pin_descendants(self, pid: int) -> None:
        """Hook workers and their supervisors are mitmdump's children and start on its CPU:
        moved to the others, every thread (what they start later inherits it)."""
        if self.others is None:
            return
        for child in descendants(pid):
            with contextlib.suppress(OSError):
                for tid in os.listdir(f"/proc/{child}/task"):
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(int(tid), self.others)


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{entry}/stat", "rb") as f:
                parents.setdefault(int(f.read().rsplit(b")", 1)[1].split()[1]), []).append(int(entry))
    found, queue = [], list(parents.get(pid, []))
    while queue:
        child = queue.pop()
        found.append(child)
        queue += parents.get(child, [])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, all its threads (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far), in KiB."""
    figures = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0])
    return figures


def answers(port: int, path: str = "/ready") -> bool:
    """Whether a GET to 127.0.0.1:port gets a 200 (through the proxy: the upstream is there too)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# --- the upstream ---

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    client_max_body_size 0;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "{answer}"; }}
    }}
}}
"""

# Without nginx: the same answer from asyncio, in its own process (pinned with the others).
PY_UPSTREAM = """import asyncio, sys
ANSWER = b"HTTP/1.1 200 OK\\r\\ncontent-length: 100\\r\\n\\r\\n" + b"x" * 100
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":", 1)[1]))
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""


class Upstream:
    """A private nginx (its own config and files in a temp folder, on a loopback port; never the
    system's service) answering every request with 100 bytes; an asyncio server without nginx."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = Path(tempfile.mkdtemp(prefix="proxy-hooks-bench-upstream-"))
        nginx = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
        )
        if nginx is not None:
            conf = self.home / "nginx.conf"
            conf.write_text(NGINX_CONF.format(home=self.home, port=self.port, answer=ANSWER.decode()))
            command = [nginx, "-p", str(self.home), "-c", str(conf), "-e", str(self.home / "error.log")]
            self.name = _version([nginx, "-v"]) or "nginx"
        else:
            command = [sys.executable, "-c", PY_UPSTREAM, str(self.port)]
            self.name = "asyncio (install nginx for a C upstream)"
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: answers(self.port) or self.proc.poll() is not None, 10, "the upstream")
        if self.proc.poll() is not None:
            raise RuntimeError(f"the upstream ({' '.join(command)}) did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)


def _version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].replace("nginx version: ", "") if text else None


# --- mitmdump ---


def mitmproxy_line(python: str = sys.executable) -> str:
    """ "mitmproxy 11.0.2, Python 3.11.7": what the bench ran on."""
    out = _run_text([str(Path(python).with_name("mitmdump")), "--version"])
    found = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"mitmproxy {found.get('Mitmproxy', '?').strip()}, Python {found.get('Python', '?').strip()}"


def _run_text(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


class Mitmdump:
    """mitmdump in reverse mode in front of `upstream_url`, with the addon unless `addon` is
    False, pinned to the proxy's CPU. Ready when a GET through it gets a 200."""

    def __init__(
        self,
        upstream_url: str,
        home: Path,
        pinning: Pinning,
        addon: bool = True,
        options: dict[str, str] | None = None,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """`wrapper`: a command mitmdump runs under (valgrind, for instruction counts)."""
        self.port = free_port()
        command = [
            *wrapper,
            str(Path(sys.executable).with_name("mitmdump")),
            "--mode", f"reverse:{upstream_url}@{self.port}", "--listen-host", "127.0.0.1",
            "--set", f"confdir={home / 'conf'}", "--set", "flow_detail=0",
        ]  # fmt: skip
        if addon:
            command += ["-s", str(ADDON), "--set", "hooks_api=127.0.0.1:0"]
        for name, value in (options or {}).items():
            command += ["--set", f"{name}={value}"]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=home,
            preexec_fn=pinning.proxy_preexec(),
        )
        self.pid = self.proc.pid
        deadline_s = STARTUP_DEADLINE_S * (10 if wrapper else 1)  # valgrind starts it slowly
        try:
            wait_for(lambda: answers(self.port) or self.proc.poll() is not None, deadline_s, "mitmdump")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"mitmdump exited at start-up: {' '.join(command)}")

    def stop(self) -> None:
        interrupt(self.proc)


# --- load ---

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
WRK_POST = """wrk.method = "POST"
wrk.body = string.rep("x", {size})
wrk.headers["Content-Type"] = "application/octet-stream"
"""


@dataclass(frozen=True)
class Load:
    """What one window sent: how many connections, for how long, with what body."""

    connections: int
    seconds: float
    body: int = 0  # bytes of a POST body; 0: GET

    @property
    def label(self) -> str:
        return f"{self.connections} conn" + ("s" if self.connections > 1 else "")


def load_generator() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return "asyncio in the bench's process (install wrk for a C load generator)"
    return " ".join((_version([wrk, "-v"]) or "wrk").split()[:2])


def drive(port: int, load: Load) -> dict[str, float]:
    """req/s, p50 and p99 in ms: with wrk when it is installed, else with asyncio here."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        return _wrk(wrk, port, load)
    return _asyncio_load(port, load)


def _wrk(wrk: str, port: int, load: Load) -> dict[str, float]:
    command = [
        wrk,
        f"-t{min(load.connections, 2)}",
        f"-c{load.connections}",
        f"-d{max(1, round(load.seconds))}s",
        "--latency",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if load.body:
            script.write(WRK_POST.format(size=load.body))
            script.flush()
            command += ["-s", script.name]
        out = _run_text([*command, f"http://127.0.0.1:{port}/bench"])
    figures: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            figures["rps"] = float(parts[1])
        elif line.strip().startswith(("Non-2xx", "Socket errors")):
            figures["errors"] = figures.get("errors", 0) + sum(
                int(p.strip(",")) for p in parts if p.strip(",").isdigit()
            )
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            unit = next(u for u in ("us", "ms", "s") if parts[1].endswith(u))
            figures["p50" if parts[0] == "50%" else "p99"] = float(parts[1][: -len(unit)]) * _UNITS[unit]
        elif "requests in" in line:
            figures["requests"] = float(parts[0])
    return figures


def _asyncio_load(port: int, load: Load) -> dict[str, float]:
    latencies: list[float] = []
    body = b"x" * load.body
    method = "POST" if load.body else "GET"
    head = f"{method} /bench HTTP/1.1\r\nHost: bench.test\r\ncontent-length: {len(body)}\r\n\r\n".encode()

    async def client(deadline: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(head + body)
                answer = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":", 1)[1]) for line in answer.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")), 0,
                )  # fmt: skip
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    async def main() -> None:
        deadline = time.perf_counter() + load.seconds
        await asyncio.gather(*(client(deadline) for _ in range(load.connections)))

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "requests": float(len(latencies)),
        "p50": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
    }


def measure(pid: int, port: int, load: Load, idle_rate: float) -> dict[str, float]:
    """One load window, with mitmdump's own CPU per request in ms (what it burns idle, the file
    watcher and the events writer's checks, subtracted)."""
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    figures = drive(port, load)
    elapsed = time.perf_counter() - started
    busy = cpu_seconds(pid) - cpu_before - idle_rate * elapsed
    requests = figures.get("requests") or figures["rps"] * load.seconds
    figures["cpu_ms"] = max(busy, 0.0) * 1000 / max(requests, 1)
    return figures


def idle_rate(pid: int, seconds: float = 1.0) -> float:
    """CPU seconds per second mitmdump burns with no traffic."""
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - started)


# --- instruction counts (callgrind): the same on a busy machine as on a quiet one ---


def callgrind(out: Path) -> tuple[str, ...]:
    """mitmdump under callgrind, counting nothing until `count_instructions` says so."""
    return ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")


def count_instructions(pid: int, port: int, requests: int, body: int, out: Path) -> float:
    """User-space instructions mitmdump (all its threads) executes per request, over
    `requests` sent one after another on one connection."""
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=True)
    sequential(port, requests, body)
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True, check=True)
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
    total = 0
    for dump in out.parent.glob(out.name + "*"):
        for line in dump.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total / requests


def sequential(port: int, count: int, body: int = 0) -> None:
    """`count` requests, each after the answer to the one before, on one connection."""
    method = "POST" if body else "GET"
    head = f"{method} /bench HTTP/1.1\r\nHost: bench.test\r\ncontent-length: {body}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as answers_file:
        for _ in range(count):
            sock.sendall(head + b"x" * body)
            length = 0
            while (line := answers_file.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answers_file.read(length)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)
