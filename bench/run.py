"""`make bench`: every configuration measured in one run against bare mitmdump, as one table.

Proxy rows: mitmdump in reverse mode in front of a local aiohttp upstream (100-byte answers),
driven by a keep-alive HTTP/1.1 load generator written with asyncio streams, at 1 and 16
connections, for a fixed time each. The machine is noisy: read the ratios to bare, not the
absolute numbers. Nothing here is a test; nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from addon.matching import ClientView, CompiledContainer, RequestFacts  # noqa: E402
from addon.model import HooksFile  # noqa: E402
from addon.store import Snapshot  # noqa: E402
from tests.harness import Mitmdump, Upstream, free_port, wait_for  # noqa: E402

PY_CONTINUE = "import sys\nsys.stdin.read()\n"
JS_CONTINUE = "process.stdin.resume();process.stdin.on('end',()=>{});\n"
SH_CONTINUE = "cat > /dev/null\n"
PY_HANDLE = "def handle(event):\n    return None\n"
JS_HANDLE = "exports.handle = () => null;\n"


async def _client(port: int, path: str, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench.test\r\n\r\n".encode()
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def load(port: int, connections: int, seconds: float, path: str = "/bench") -> dict[str, float]:
    """req/s, p50 and p99 in ms: with wrk when it is installed (a C load generator leaves the
    two cores to the proxy), else with the asyncio one above."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        return _wrk(wrk, port, connections, seconds, path)
    latencies: list[float] = []

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_client(port, path, deadline, latencies) for _ in range(connections)))

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
    }


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(wrk: str, port: int, connections: int, seconds: float, path: str) -> dict[str, float]:
    threads = min(connections, 2)
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    figures: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            figures["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            value = parts[1]
            unit = next(u for u in ("us", "ms", "s") if value.endswith(u))
            figures["p50" if parts[0] == "50%" else "p99"] = float(value[: -len(unit)]) * _UNITS[unit]
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (its own, not its children's)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, port: int, seconds: float) -> dict[int, dict[str, float]]:
    """At 1 and 16 connections, with the proxy's own CPU per request in ms. What the proxy burns
    while idle (timers, the file watcher) is measured first and subtracted: at 20 req/s it
    would otherwise look like a cost of each request."""
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    time.sleep(2)
    idle_rate = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - started)
    results = {}
    for conns in (1, 16):
        cpu_before, started = cpu_seconds(pid), time.perf_counter()
        figures = load(port, conns, seconds)
        busy = cpu_seconds(pid) - cpu_before - idle_rate * (time.perf_counter() - started)
        figures["cpu_ms"] = max(busy, 0.0) * 1000 / max(figures["rps"] * seconds, 1)
        results[conns] = figures
    return results


class EmptyAnswers:
    """A hook service for the remote-hook row: every POST gets an empty 200 (carry on)."""

    def __init__(self) -> None:
        import threading

        from aiohttp import web

        async def answer(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=200)

        async def start() -> int:
            app = web.Application()
            app.router.add_post("/{tail:.*}", answer)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", 0).start()
            return int(self.runner.addresses[0][1])

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def container(
    upstream: Upstream, hooks: dict[str, list[dict[str, Any]]], services: int = 1
) -> dict[str, Any]:
    names = [f"s{i}" for i in range(services)]
    return {
        "container": "bench",
        "file_version": 1,
        "services": {
            name: {"hosts": [f"{name}.bench.test"] + ([f"127.0.0.1:{upstream.port}"] if name == "s0" else [])}
            for name in names
        },
        "hooks": {name: hooks.get(name, []) for name in names},
    }


def alone_ms(command: list[str], script: Path, repeat: int = 20) -> float:
    """A per-run script on its own: spawned from here, fed an event, waited for (median)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*command, str(script)], input=b"{}", env={"PATH": "/usr/bin:/bin"}, check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


PER_RUN = {".py": [sys.executable], ".js": [shutil.which("node") or "node"], ".sh": ["/bin/bash"]}


def proxy_rows(seconds: float) -> list[tuple[str, dict[int, dict[str, float]]]]:
    upstream = Upstream()
    hook_service = EmptyAnswers()
    remote = container(upstream, {"s0": [{"match": {"method": "*", "path": "/**"},
                                          "script": {"subdomain": "hooks", "path": "/h"}}]})  # fmt: skip
    remote["services"]["hooks"] = {"hosts": ["hooks.bench.internal"], "upstream": hook_service.url}
    rows: list[tuple[str, dict[int, dict[str, float]]]] = []
    many = {f"s{i}": [{"match": {"method": "*", "path": f"/never/{i}/{j}/**"}, "script": {"path": "/x.py"}}
                      for j in range(100)] for i in range(10)}  # fmt: skip
    configs: list[tuple[str, dict[str, Any] | None, dict[str, str]]] = [
        ("bare mitmdump", None, {}),
        ("addon, 1,000 hooks, none match", container(upstream, many, services=10), {}),
        (
            "matched hook, per-run python",
            container(upstream, {"s0": [_hook("/c.py")]}),
            {"c.py": PY_CONTINUE},
        ),
        ("matched hook, per-run node", container(upstream, {"s0": [_hook("/c.js")]}), {"c.js": JS_CONTINUE}),
        ("matched hook, per-run bash", container(upstream, {"s0": [_hook("/c.sh")]}), {"c.sh": SH_CONTINUE}),
        (  # every request the same: after the first, each gets the cached verdict
            "matched hook, cached verdict (python)",
            container(upstream, {"s0": [{**_hook("/c.py"), "cache": {"ttl_ms": 3_600_000}}]}),
            {"c.py": PY_CONTINUE},
        ),
        ("matched hook, remote (aiohttp hook service)", remote, {}),
        (
            "matched hook, exec-session python",
            container(upstream, {"s0": [_hook("/h.py", "bench")]}),
            {"h.py": PY_HANDLE},
        ),
        (
            "matched hook, exec-session node",
            container(upstream, {"s0": [_hook("/h.js", "bench")]}),
            {"h.js": JS_HANDLE},
        ),
    ]
    try:
        for label, doc, scripts in configs:
            home = Path(tempfile.mkdtemp(prefix="proxy-hooks-bench-"))
            (home / "scripts").mkdir()
            for name, source in scripts.items():
                (home / "scripts" / name).write_text(source)
            port = free_port()
            if doc is None:
                mitmdump = str(Path(sys.executable).with_name("mitmdump"))
                proc = subprocess.Popen(
                    [mitmdump, "--mode", f"reverse:{upstream.url}@{port}", "--listen-host", "127.0.0.1",
                     "--set", f"confdir={home / 'conf'}", "--set", "flow_detail=0"],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
                wait_for(lambda p=port: _listening(p), 30, "bare mitmdump")
                try:
                    rows.append((label, measured(proc.pid, port, seconds)))
                finally:
                    proc.terminate()
                    proc.wait()
                continue
            (home / "c.json").write_text(json.dumps(doc))
            proxy = Mitmdump(
                home / "c.json", home / "conf", "--set", "flow_detail=0", reverse_to=upstream.url, events=""
            )
            try:
                assert proxy.reverse_port is not None
                load(proxy.reverse_port, 1, 1)  # warm-up: exec-session workers start on first use
                figures = measured(proxy.proc.pid, proxy.reverse_port, seconds)
                if "per-run" in label:  # its script alone, now, under the same conditions
                    [(name, _)] = scripts.items()
                    figures[1]["alone_ms"] = alone_ms(PER_RUN[Path(name).suffix], home / "scripts" / name)
                rows.append((label, figures))
            finally:
                proxy.stop()
            shutil.rmtree(home, ignore_errors=True)
    finally:
        upstream.stop()
        hook_service.stop()
    return rows


def _hook(script: str, exec_id: str | None = None) -> dict[str, Any]:
    return {"match": {"method": "*", "path": "/**"}, "script": {"path": script, "execId": exec_id}}


def run_cost_rows(runs: int = 300) -> list[tuple[str, float, float]]:
    """The proxy's own CPU for one run, measured in this process with the proxy's code: what a
    run costs the event loop that carries every flow, without the other processes' noise (on
    2 vCPUs, whatever runs beside the proxy slows its every instruction)."""
    from addon.scripts import Runtimes, minimal_env, run_script
    from addon.sessions import SessionKey, SessionPool, script_stamp

    home = Path(tempfile.mkdtemp(prefix="proxy-hooks-bench-cost-"))
    (home / "c.sh").write_text(SH_CONTINUE)
    (home / "h.py").write_text(PY_HANDLE)
    command = ["/bin/bash", str(home / "c.sh")]
    event = {"version": 1, "phase": "request", "request": {"headers": [["x-a", "b"]] * 8, "body": "x" * 100}}
    stdin = json.dumps(event).encode()
    key = SessionKey("bench", "cost", "python")
    stamp = script_stamp(os.stat(home / "h.py"))
    rows = []

    async def main() -> None:
        pool = SessionPool(Runtimes.detect(), minimal_env())
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("per-run, started in the proxy's own process",
             lambda: run_script(command, stdin, 5, home, minimal_env())),
            ("per-run, started by the spawner worker", lambda: pool.spawn("/c.sh", event, 5, home)),
            ("exec session (python handle)", lambda: pool.run(key, home / "h.py", stamp, event, 5, home)),
        ]  # fmt: skip
        for label, call in calls:
            await call()  # warm: workers start
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(runs):
                await call()
            rows.append(
                (label, (time.process_time() - cpu) * 1000 / runs, (time.perf_counter() - wall) * 1000 / runs)
            )
        pool.close()

    asyncio.run(main())
    shutil.rmtree(home, ignore_errors=True)
    return rows


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def matcher_rows() -> list[tuple[str, float, float]]:
    rows = []
    for count in (10, 1_000, 10_000):
        hooks = [
            {"match": {"method": "GET", "path": f"/api/v{i % 7}/items/{i}/*"}, "script": {"path": "/x.py"}}
            for i in range(count)
        ]
        hooks_file = HooksFile.model_validate(
            {"container": "m", "services": {"s": {"hosts": ["s"]}}, "hooks": {"s": hooks}}
        )
        compiled = CompiledContainer.compile(Snapshot(Path("/tmp/m.json"), hooks_file))
        service = compiled.services[0]
        last = count - 1
        view = ClientView(RequestFacts("GET", f"/api/v{last % 7}/items/{last}/x", {}, "127.0.0.1"), {})
        assert compiled.first_match(service, view) is not None
        indexed = _median_us(functools.partial(compiled.first_match, service, view))
        linear = _median_us(functools.partial(compiled.first_match_linear, service, view), 200)
        rows.append((f"{count:,} hooks", indexed, linear))
    return rows


def _median_us(call: Callable[[], object], repeat: int = 2000) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def api_rows(seconds: float) -> list[tuple[str, float]]:
    import httpx

    from tests.conftest import ApiProcess, write_container

    home = Path(tempfile.mkdtemp(prefix="proxy-hooks-bench-api-"))
    path = write_container(home / "demo.json")
    api = ApiProcess(path)
    try:
        with httpx.Client(base_url=api.url) as http:
            reads, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                http.get("/api/v1/containers/demo/proxy/hooks/auth")
                reads += 1
            read_rate = reads / (time.perf_counter() - started)
            writes, started = 0, time.perf_counter()
            etag = http.get("/api/v1/containers/demo/proxy/hooks").headers["ETag"]
            body = {"match": {"method": "GET", "path": "/w"}, "script": {"path": "/w.py"}}
            while time.perf_counter() - started < seconds:
                response = http.post(
                    "/api/v1/containers/demo/proxy/hooks/billing", json=body, headers={"If-Match": etag}
                )
                etag = response.headers["ETag"]
                writes += 1
            write_rate = writes / (time.perf_counter() - started)
    finally:
        api.stop()
        shutil.rmtree(home, ignore_errors=True)
    return [("reads/s (GET a service's hooks)", read_rate), ("writes/s (POST, fsynced)", write_rate)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per load measurement (default 5)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")  # fmt: skip
    print(f"load generator: {'wrk' if shutil.which('wrk') else 'asyncio (install wrk for better numbers)'}")
    rows = proxy_rows(args.seconds)
    bare = rows[0][1]
    columns = (
        "configuration | conns | req/s | ratio to bare | p50 ms | added p50 ms | p99 ms | proxy CPU ms/req"
    )
    print(f"\n| {columns} |")
    print("|---|---|---|---|---|---|---|---|")
    for label, by_conns in rows:
        for conns, figures in by_conns.items():
            ratio = figures["rps"] / bare[conns]["rps"]
            rps, p50, p99, cpu = figures["rps"], figures["p50"], figures["p99"], figures["cpu_ms"]
            added = p50 - bare[conns]["p50"]
            print(
                f"| {label} | {conns} | {rps:.0f} | {ratio:.2f} | {p50:.2f} | {added:+.2f} | {p99:.2f} "
                f"| {cpu:.2f} |"
            )
    print("\n| per-run hook, 1 connection | script alone, median ms | added p50 ms | overhead |")
    print("|---|---|---|---|")
    for label, by_conns in rows:
        if "alone_ms" in by_conns[1]:
            alone, added = by_conns[1]["alone_ms"], by_conns[1]["p50"] - bare[1]["p50"]
            print(f"| {label} | {alone:.1f} | {added:.1f} | {added / alone - 1:+.0%} |")
    print("\n| one run, one at a time, in the proxy's process | proxy CPU ms/run | wall ms/run |")
    print("|---|---|---|")
    for label, cpu, wall in run_cost_rows():
        print(f"| {label} | {cpu:.3f} | {wall:.2f} |")
    print("\n| matcher, one service | indexed, median µs | linear scan, median µs |")
    print("|---|---|---|")
    for label, indexed, linear in matcher_rows():
        print(f"| {label} | {indexed:.2f} | {linear:.1f} |")
    print("\n| control API alone | per second |")
    print("|---|---|")
    for label, rate in api_rows(min(args.seconds, 3.0)):
        print(f"| {label} | {rate:.0f} |")


if __name__ == "__main__":
    main()
