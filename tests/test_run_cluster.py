"""`make run-cluster` (configs/run_cluster.py): an embedded PostgreSQL, two proxies and the API.

The script is started as the Makefile starts it, on free ports; the curl lines it prints are run
as printed (bash, curl) and must show what they claim: the API write enforced by both proxies,
both proxies' runs in one /events. Ctrl-C stops every part, the database too; a second start
finds the data kept (the write is still enforced, nothing imported again).
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.harness import free_port
from tests.postgres_server import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE_S = 90.0
DEADLINE_S = 20.0

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the printed lines use curl")


class RunCluster:
    def __init__(self, home: Path, ports: dict[str, int]) -> None:
        self.home = home
        self.ports = ports
        command = [
            sys.executable,
            str(ROOT / "configs" / "run_cluster.py"),
            "--home", str(home),
            "--proxy-ports", f"{ports['a']},{ports['b']}",
            "--api", f"127.0.0.1:{ports['api']}",
            "--pg-port", str(ports["pg"]),
            "--upstream-ports", f"{ports['auth']},{ports['billing']}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.output.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} from run-cluster:\n" + "\n".join(self.output))

    def try_lines(self) -> list[str]:
        """The shell lines printed under the 'A write through the API' heading."""
        start = next(i for i, line in enumerate(self.output) if line.startswith("A write through the API"))
        lines: list[str] = []
        for line in self.output[start + 1 :]:
            if not line.strip():
                break
            lines.append(line)
        return lines

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it to the script; its parts run in sessions of their own."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        self.drain()
        return code

    def drain(self) -> None:
        """The rest of the output, to its end."""
        while (line := self._lines.get(timeout=DEADLINE_S)) is not None:
            self.output.append(line)

    def close(self) -> None:
        """After a failure too: Ctrl-C is what stops its parts (each in a session of its own),
        so a kill is the last resort, and the database is stopped whatever happened."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if (self.home / "pg" / "postmaster.pid").exists():
            LocalPostgres(self.home / "pg").stop("immediate")


def bash(*lines: str) -> str:
    result = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=30)
    return result.stdout + result.stderr


def until(check_lines: list[str], setup: str, expected: list[str]) -> str:
    """Runs the lines until their output holds every expected text, or the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        out = bash(setup, *check_lines)
        if all(text in out for text in expected) or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_run_cluster_prints_lines_that_show_one_write_enforced_by_both_proxies(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("a", "b", "api", "pg", "auth", "billing")}
    home = tmp_path / "cluster"
    cluster = RunCluster(home, ports)
    try:
        cluster.wait_for("Ctrl-C stops the cluster.")
        assert any("container 'demo' added as version" in line for line in cluster.output)
        lines = cluster.try_lines()
        setup, etag, write, proxy_a, proxy_b, events = lines
        assert setup.startswith("P=http://127.0.0.1:")
        # Before the write, no hook blocks /v1/cluster: both proxies let the DELETE through.
        assert bash(setup, proxy_a).strip() == "proxy-a: 200"
        answer = json.loads(bash(setup, etag, write))
        assert answer["statusCode"] == 201 and answer["data"]["hook"]["match"]["path"] == "/v1/cluster/**"
        assert "proxy-a: 403" in until([proxy_a], setup, ["proxy-a: 403"])
        assert "proxy-b: 403" in until([proxy_b], setup, ["proxy-b: 403"])
        shown = until([events], setup, ['"proxy-a"', '"proxy-b"'])
        assert '"instance": "proxy-a"' in shown and '"instance": "proxy-b"' in shown, shown
        assert '"outcome": "blocked"' in shown
        assert cluster.interrupt() == 0
    finally:
        cluster.close()
    assert "run-cluster: stopping" in cluster.output
    assert not (home / "pg" / "postmaster.pid").exists(), "PostgreSQL still running after Ctrl-C"
    assert not any(listening(ports[name]) for name in ("a", "b", "api", "auth", "pg"))

    # Started again: the database kept the write (no new import), both proxies enforce it at once.
    again = RunCluster(home, ports)
    try:
        again.wait_for("Ctrl-C stops the cluster.")
        assert not any("added as version" in line for line in again.output)
        setup, _, _, proxy_a, proxy_b, _ = again.try_lines()
        assert bash(setup, proxy_a, proxy_b).split() == ["proxy-a:", "403", "proxy-b:", "403"]
        assert again.interrupt() == 0
    finally:
        again.close()
    assert not (home / "pg" / "postmaster.pid").exists()


def test_run_cluster_refuses_a_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("a", "b", "api", "pg", "auth", "billing")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["b"]))
        taken.listen()  # someone else's server: connecting to it would succeed
        cluster = RunCluster(tmp_path / "cluster", ports)
        code = cluster.proc.wait(timeout=60)
        cluster.drain()
    assert code == 2
    assert f"port {ports['b']} for a proxy is in use; pick another: make run-cluster PROXY_PORT=…" in (
        "\n".join(cluster.output)
    )
    assert not (tmp_path / "cluster" / "pg").exists(), "PostgreSQL was set up anyway"


def test_the_readme_shows_the_lines_run_cluster_prints_by_default() -> None:
    """The README's block is what `make run-cluster` prints with its default ports."""
    sys.path.insert(0, str(ROOT / "configs"))
    try:
        import run_cluster
    finally:
        sys.path.remove(str(ROOT / "configs"))
    cluster = run_cluster.Cluster(run_cluster.parser().parse_args([]))
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### A cluster on your machine") :]
    block = section[section.index("```sh\nP=") + len("```sh\n") :]
    assert block[: block.index("```")].rstrip("\n") == run_cluster.try_lines(cluster)
