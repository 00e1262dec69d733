"""`make bench`: what hooks cost mitmproxy, as a table ready for the README.

Every proxy row is mitmdump in reverse mode in front of a private nginx (100-byte answers; an
asyncio server without nginx), loaded by wrk (asyncio without it) at 1 and 16 connections.
mitmdump is pinned to one CPU and everything else to the others (see `bench/parts.py`), so its
own CPU time per request, read from /proc before and after each load window, is the headline
figure: with the proxy's core saturated, throughput is its inverse. The rows run interleaved
(every row once per round, the order rotated each round, each against the same round's bare
mitmdump) and each figure is printed as the median over the rounds with its spread (min–max).

With the hooks and events in PostgreSQL, two tables follow: write-to-enforced propagation across
three proxies (bench/propagation.py) and events written per second (bench/events_pg.py), on an
embedded PostgreSQL with nothing pinned (`--rows` without `propagation,events` leaves them out).

Nothing here is a test; nothing asserts a time. `python bench/run.py --help` for the options
(`make bench BENCH_ARGS="--rounds 1 --seconds 2 --rows bare,session-py"` for a quick look).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addon.matching import ClientView, CompiledContainer, RequestFacts
from addon.model import HooksFile
from addon.store import Snapshot
from bench.parts import (
    Load,
    Mitmdump,
    Pinning,
    Upstream,
    callgrind,
    count_instructions,
    idle_rate,
    load_generator,
    measure,
    mitmproxy_line,
    scratch,
    sequential,
)

PY_CONTINUE = "import sys\nsys.stdin.read()\n"
JS_CONTINUE = "process.stdin.resume();process.stdin.on('end',()=>{});\n"
SH_CONTINUE = "cat > /dev/null\n"
PY_HANDLE = "def handle(event):\n    return None\n"
JS_HANDLE = "exports.handle = () => null;\n"
BODY_10K = 10 * 1024
CONNECTIONS = (1, 16)


@dataclass(frozen=True)
class Config:
    """One row: how mitmdump runs, and what it is compared with."""

    key: str  # for --rows
    label: str
    addon: bool = True
    hooks: dict[str, list[dict[str, Any]]] | None = None  # per service; None: no hooks_config
    services: int = 1
    scripts: dict[str, str] = field(default_factory=dict)
    events: bool = True
    body: int = 0  # a POST body of this many bytes; 0: GET
    baseline: str = "bare"
    alone: tuple[str, ...] = ()  # a per-run row: the command its script runs with, timed alone
    remote: bool = False  # s0's hook is served by a hook service (script.subdomain), not a script


def _hook(script: str, exec_id: str | None = None) -> dict[str, Any]:
    return {"match": {"method": "*", "path": "/**"}, "script": {"path": script, "execId": exec_id}}


def _never_matching(services: int, per_service: int) -> dict[str, list[dict[str, Any]]]:
    return {
        f"s{i}": [
            {"match": {"method": "*", "path": f"/never/{i}/{j}/**"}, "script": {"path": "/x.py"}}
            for j in range(per_service)
        ]
        for i in range(services)
    }


def configs() -> list[Config]:
    node = shutil.which("node") or "node"
    session_py = {"s0": [_hook("/h.py", "bench")]}
    return [
        Config("bare", "bare mitmdump", addon=False),
        Config("addon", "addon, no hooks_config"),
        Config("hooks-1000", "addon, 1,000 hooks, none match", hooks=_never_matching(10, 100), services=10),
        Config("session-py", "exec session, python handle", hooks=session_py, scripts={"h.py": PY_HANDLE}),
        Config(
            "session-node",
            "exec session, node handle",
            hooks={"s0": [_hook("/h.js", "bench")]},
            scripts={"h.js": JS_HANDLE},
        ),
        Config(
            "session-py-no-events",
            "exec session, python, events off (hooks_events=)",
            hooks=session_py,
            scripts={"h.py": PY_HANDLE},
            events=False,
        ),
        Config("bare-10k", "bare mitmdump, 10 KiB POST body", addon=False, body=BODY_10K),
        Config(
            "session-py-10k",
            "exec session, python, 10 KiB POST body",
            hooks=session_py,
            scripts={"h.py": PY_HANDLE},
            body=BODY_10K,
            baseline="bare-10k",
        ),
        Config(
            "run-py",
            "per-run python",
            hooks={"s0": [_hook("/c.py")]},
            scripts={"c.py": PY_CONTINUE},
            alone=(sys.executable,),
        ),
        Config(
            "run-node",
            "per-run node",
            hooks={"s0": [_hook("/c.js")]},
            scripts={"c.js": JS_CONTINUE},
            alone=(node,),
        ),
        Config(  # every request the same: after the first, each gets the cached verdict
            "cached",
            "cached verdict (per-run python, cache ttl 1 h)",
            hooks={"s0": [{**_hook("/c.py"), "cache": {"ttl_ms": 3_600_000}}]},
            scripts={"c.py": PY_CONTINUE},
        ),
        Config(
            "remote",
            "remote hook (an aiohttp hook service answering 200, no body)",
            hooks={
                "s0": [
                    {"match": {"method": "*", "path": "/**"}, "script": {"subdomain": "hooks", "path": "/h"}}
                ]
            },
            remote=True,
        ),
        Config(
            "run-bash",
            "per-run bash (cat >/dev/null)",
            hooks={"s0": [_hook("/c.sh")]},
            scripts={"c.sh": SH_CONTINUE},
            alone=("/bin/bash",),
        ),
    ]


def container(upstream_port: int, config: Config) -> dict[str, Any]:
    """s0 is the service the bench's flows are for (the reverse target's address)."""
    names = [f"s{i}" for i in range(config.services)]
    hooks = config.hooks or {}
    services: dict[str, dict[str, Any]] = {
        name: {"hosts": [f"{name}.bench.test"] + ([f"127.0.0.1:{upstream_port}"] if name == "s0" else [])}
        for name in names
    }
    if config.remote:  # the service s0's hook names in script.subdomain
        services["hooks"] = {"hosts": ["hooks.bench.internal"], "upstream": hook_service_url()}
    return {
        "container": "bench",
        "file_version": 1,
        "services": services,
        "hooks": {name: hooks.get(name, []) for name in names},
    }


_HOOK_SERVICE: list[str] = []


def hook_service_url() -> str:
    """One hook service for the remote row, started on first use in a thread of this process
    (a daemon: it ends with the bench): every POST gets an empty 200, "carry on"."""
    if not _HOOK_SERVICE:
        import asyncio
        import threading

        from aiohttp import web

        async def answer(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=200)

        async def start() -> int:
            app = web.Application()
            app.router.add_post("/{tail:.*}", answer)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            return int(runner.addresses[0][1])

        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        _HOOK_SERVICE.append(f"http://127.0.0.1:{port}")
    return _HOOK_SERVICE[0]


Figures = dict[int, dict[str, float]]  # connections -> rps, p50, p99, cpu_ms (and alone_ms)


def prepare(config: Config, upstream: Upstream, home: Path) -> dict[str, str]:
    """The row's hooks file and scripts in `home`; mitmdump's options for it."""
    options: dict[str, str] = {}
    if config.addon:
        # Not beside bench.json: the hooks-file watcher would wake for every events write (the
        # default store, <config folder>/.proxy-hooks/events.db, is in a folder of its own too).
        (home / "events").mkdir()
        options["hooks_events"] = str(home / "events" / "events.db") if config.events else ""
    if config.hooks is not None:
        (home / "scripts").mkdir()
        for name, source in config.scripts.items():
            (home / "scripts" / name).write_text(source)
        (home / "bench.json").write_text(json.dumps(container(upstream.port, config)))
        options["hooks_config"] = str(home / "bench.json")
    return options


def run_config(config: Config, upstream: Upstream, pinning: Pinning, seconds: float) -> Figures:
    """Start mitmdump for this row, warm it up (exec-session workers start on first use),
    move its workers off its CPU, then one load window per connection count."""
    with scratch("proxy-hooks-bench-") as home:
        options = prepare(config, upstream, home)
        proxy = Mitmdump(upstream.url, home, pinning, addon=config.addon, options=options)
        try:
            measure(proxy.pid, proxy.port, Load(1, 1, config.body), 0.0)  # warm-up
            pinning.pin_descendants(proxy.pid)
            idle = idle_rate(proxy.pid)
            figures = {conns: measure(proxy.pid, proxy.port, Load(conns, seconds, config.body), idle)
                       for conns in CONNECTIONS}  # fmt: skip
        finally:
            proxy.stop()
        if config.alone:
            [(name, _)] = config.scripts.items()
            figures[1]["alone_ms"] = alone_ms([*config.alone, str(home / "scripts" / name)])
    return figures


def instructions(config: Config, upstream: Upstream, pinning: Pinning, requests: int) -> float:
    """The row's mitmdump under callgrind: instructions per request (see `count_instructions`)."""
    with scratch("proxy-hooks-bench-callgrind-") as home:
        options = prepare(config, upstream, home)
        out = home / "callgrind.out"
        proxy = Mitmdump(upstream.url, home, pinning, config.addon, options, wrapper=callgrind(out))
        try:
            sequential(proxy.port, 20, config.body)  # warm-up: workers start
            pinning.pin_descendants(proxy.pid)
            return count_instructions(proxy.pid, proxy.port, requests, config.body, out)
        finally:
            proxy.stop()


def print_instructions(counts: dict[str, float], chosen: list[Config], requests: int) -> None:
    print(
        f"\n| configuration | mitmdump instructions per request, millions (callgrind, {requests} requests "
        "one after another) | ratio to bare (bare ÷ this) |"
    )
    print("|---|---|---|")
    for config in chosen:
        base = counts.get(config.baseline)
        ratio = f"{base / counts[config.key]:.3f}" if base else "–"
        print(f"| {config.label} | {counts[config.key] / 1e6:.3f} | {ratio} |")


def alone_ms(command: list[str], repeat: int = 20) -> float:
    """A per-run hook's script on its own: started from here, fed an event, waited for (median)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, input=b"{}", env={"PATH": "/usr/bin:/bin"}, check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


# --- summaries ---


@dataclass
class Row:
    config: Config
    rounds: list[Figures] = field(default_factory=list)

    def values(self, conns: int, name: str) -> list[float]:
        return [r[conns][name] for r in self.rounds if name in r[conns]]


def spread(values: Sequence[float], digits: int = 2, sign: bool = False) -> str:
    """The median, and (over several rounds) its spread."""
    if not values:
        return "–"
    shown = f"{{:{'+' if sign else ''}.{digits}f}}"
    median = shown.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({shown.format(min(values))}…{shown.format(max(values))})"


def paired(
    row: Row, base: Row, conns: int, of: Callable[[dict[str, float], dict[str, float]], float]
) -> list[float]:
    """One figure per round, of this row against the same round's baseline."""
    return [of(r[conns], b[conns]) for r, b in zip(row.rounds, base.rounds, strict=False)]


def cpu_ratio(r: dict[str, float], b: dict[str, float]) -> float:
    return b["cpu_ms"] / r["cpu_ms"] if r["cpu_ms"] else float("nan")


def rps_ratio(r: dict[str, float], b: dict[str, float]) -> float:
    return r["rps"] / b["rps"]


def added_p50(r: dict[str, float], b: dict[str, float]) -> float:
    return r["p50"] - b["p50"]


def print_proxy_table(rows: dict[str, Row]) -> None:
    print(
        "\n| configuration | mitmdump CPU per request, ms (16 conns) | ratio to bare (bare CPU ÷ this) "
        "| req/s, 16 conns | req/s ratio to bare | p50 / p99, 1 conn, ms | added p50, 1 conn, ms "
        "| p50 / p99, 16 conns, ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows.values():
        base = rows.get(row.config.baseline)
        ratio = spread(paired(row, base, 16, cpu_ratio)) if base else "–"
        rps_vs = spread(paired(row, base, 16, rps_ratio)) if base else "–"
        added = spread(paired(row, base, 1, added_p50), sign=True) if base else "–"
        print(
            f"| {row.config.label} | {spread(row.values(16, 'cpu_ms'), 3)} | {ratio} "
            f"| {spread(row.values(16, 'rps'), 0)} | {rps_vs} "
            f"| {spread(row.values(1, 'p50'))} / {spread(row.values(1, 'p99'))} | {added} "
            f"| {spread(row.values(16, 'p50'), 1)} / {spread(row.values(16, 'p99'), 1)} |"
        )


def print_per_run_table(rows: dict[str, Row]) -> None:
    per_run = [row for row in rows.values() if row.config.alone]
    if not per_run or "bare" not in rows:
        return
    print("\n| per-run hook, 1 conn | script alone, ms | added p50, ms | added p50 − script alone, ms |")
    print("|---|---|---|---|")
    for row in per_run:
        added = paired(row, rows["bare"], 1, added_p50)
        over = [a - r[1]["alone_ms"] for a, r in zip(added, row.rounds, strict=False)]
        print(
            f"| {row.config.label} | {spread(row.values(1, 'alone_ms'), 1)} | {spread(added, 1)} "
            f"| {spread(over, 1, sign=True)} |"
        )


def print_targets(rows: dict[str, Row]) -> None:
    """Issue 12's targets, each with its median figure and whether it is met."""
    bare = rows.get("bare")
    if bare is None:
        return
    checks: list[tuple[str, list[float], str, float]] = []  # label, values, ">=" or "<=", limit
    for key, ratio in (("hooks-1000", 0.97), ("session-py", 0.90), ("session-node", 0.90)):
        if key in rows:
            label = rows[key].config.label
            checks.append(
                (f"{label}, req/s ratio at 16 conns", paired(rows[key], bare, 16, rps_ratio), ">=", ratio)
            )
            checks.append((f"{label}, CPU ratio", paired(rows[key], bare, 16, cpu_ratio), ">=", ratio))
            if key != "hooks-1000":
                checks.append(
                    (f"{label}, added p50 at 1 conn, ms", paired(rows[key], bare, 1, added_p50), "<=", 0.5)
                )
    if "session-py" in rows and "session-py-no-events" in rows:
        on = paired(rows["session-py"], bare, 16, cpu_ratio)
        off = paired(rows["session-py-no-events"], bare, 16, cpu_ratio)
        checks.append(
            (
                "events on vs off, CPU ratio given up",
                [b - a for a, b in zip(on, off, strict=False)],
                "<=",
                0.02,
            )
        )
    for row in rows.values():
        if row.config.alone:
            over = [
                a - r[1]["alone_ms"]
                for a, r in zip(paired(row, bare, 1, added_p50), row.rounds, strict=False)
            ]
            checks.append((f"{row.config.label}, added p50 − script alone, ms", over, "<=", 1.0))
    print("\nTargets (issue 12), on the medians:")
    for label, values, how, limit in checks:
        median = statistics.median(values)
        met = "met" if (median >= limit if how == ">=" else median <= limit) else "NOT met"
        print(f"- {label}: {median:.2f} (target {'≥' if how == '>=' else '≤'} {limit:g}): {met}")


# --- in-process rows ---


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
        compiled = CompiledContainer.compile(Snapshot(Path("m.json"), hooks_file))
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

    with scratch("proxy-hooks-bench-api-") as home:
        api = ApiProcess(write_container(home / "demo.json"))
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
    return [("reads/s (GET a service's hooks)", read_rate), ("writes/s (POST, fsynced)", write_rate)]


# --- main ---


def table_rows() -> tuple[str, ...]:
    """The rows that are tables of their own rather than mitmdump configurations."""
    return ("matcher", "api", *POSTGRESQL_ROWS)


def selected(names: str | None) -> list[Config]:
    available = configs()
    if not names:
        return available
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    known = {c.key for c in available} | set(table_rows())
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"bench: unknown row(s) {', '.join(unknown)}; rows: {', '.join(sorted(known))}")
    chosen = {c.key for c in available if c.key in wanted}
    chosen |= {c.baseline for c in available if c.key in chosen and c.addon}  # what they are compared with
    return [c for c in available if c.key in chosen]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="times every row runs, interleaved (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per load window (default 5)")
    parser.add_argument(
        "--rows",
        help="comma-separated rows (default: all): "
        + ", ".join(c.key for c in configs())
        + ", "
        + ", ".join(table_rows())
        + "; a row's bare baseline is added",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="also run every row once under callgrind (valgrind) and count mitmdump's instructions "
        "per request over N requests: the same figure on a busy machine as on a quiet one",
    )
    args = parser.parse_args(argv)
    wanted = set(args.rows.split(",")) if args.rows else set(table_rows())
    chosen = selected(args.rows)
    pinning = Pinning.plan()
    pinning.pin_self()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"{mitmproxy_line()}"
    )
    if pinning.proxy is None:
        print("bench: only one CPU here, cannot pin mitmdump to a CPU of its own; carrying on unpinned")
    print(f"Pinning: {pinning.describe()}")
    upstream = Upstream() if chosen else None
    if upstream is not None:
        print(f"Upstream: {upstream.name}, 100-byte answers; load: {load_generator()}")
        print(
            f"Rounds: {args.rounds}, interleaved; {args.seconds:g} s per load window; "
            "figures: median (min…max) over the rounds"
        )
        sys.stdout.flush()
    rows = {c.key: Row(c) for c in chosen}
    try:
        for round_index in range(args.rounds):
            shift = round_index % max(len(chosen), 1)
            for config in chosen[shift:] + chosen[:shift]:
                print(f"  round {round_index + 1}/{args.rounds}: {config.label}", file=sys.stderr, flush=True)
                assert upstream is not None
                rows[config.key].rounds.append(run_config(config, upstream, pinning, args.seconds))
    finally:
        if upstream is not None:
            upstream.stop()
    if rows and args.rounds:
        print_proxy_table(rows)
        print_per_run_table(rows)
        print_targets(rows)
    if chosen and args.instructions:
        upstream = Upstream()
        try:
            counts = {}
            for config in chosen:
                print(f"  callgrind: {config.label}", file=sys.stderr, flush=True)
                counts[config.key] = instructions(config, upstream, pinning, args.instructions)
        finally:
            upstream.stop()
        print_instructions(counts, chosen, args.instructions)
    if "matcher" in wanted:
        print("\n| matcher, one service (in-process) | indexed, median µs | linear scan, median µs |")
        print("|---|---|---|")
        for label, indexed, linear in matcher_rows():
            print(f"| {label} | {indexed:.2f} | {linear:.1f} |")
    if "api" in wanted:
        print("\n| control API alone | per second |")
        print("|---|---|")
        for label, rate in api_rows(min(args.seconds, 3.0)):
            print(f"| {label} | {rate:.0f} |")
    postgresql_tables(wanted & set(POSTGRESQL_ROWS))


def postgresql_tables(rows: set[str]) -> None:
    """The cluster's figures: many processes sharing both CPUs, as a deployment would, so the
    pinning of the proxy rows is undone first."""
    if not rows:
        return
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    from tests.postgres_server import postgres_bin_dir

    try:
        postgres_bin_dir()
    except RuntimeError as exc:
        print(f"\nbench: no PostgreSQL tables: {exc}")
        return
    print("\nPostgreSQL tables: nothing pinned, every process on every CPU", flush=True)
    for row in POSTGRESQL_ROWS:
        if row in rows:
            print(flush=True)
            POSTGRESQL_ROWS[row]()


def propagation_table() -> None:
    from bench import propagation  # the test harness it starts processes with, only when asked

    propagation.main(["--rounds", "30", "--proxies", "3"])


def events_table() -> None:
    from bench import events_pg

    events_pg.main(["--events", "10000", "--rounds", "3"])


# The PostgreSQL tables with the arguments `make bench` gives them (their own targets run longer).
POSTGRESQL_ROWS: dict[str, Callable[[], None]] = {"propagation": propagation_table, "events": events_table}


if __name__ == "__main__":
    main()
