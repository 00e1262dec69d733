"""What `make run` starts, on free ports: a copy of configs/ (its services' upstream ports
rewritten to the ones the demo services listen on here), configs/demo_upstream.py, and the
proxy with its API as `proxy-hooks run`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import proxy_hooks_command
from tests.harness import Mitmdump, free_port, wait_for

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class DemoServices:
    """configs/ copied to `folder` and the demo's auth and billing services serving it."""

    def __init__(self, folder: Path, proxy_port: int = 8080):
        shutil.copytree(CONFIGS, folder)
        self.folder = folder
        self.config = folder / "demo.json"
        auth_port, billing_port = free_port(), free_port()
        text = self.config.read_text().replace("127.0.0.1:9001", f"127.0.0.1:{auth_port}")
        self.config.write_text(text.replace("127.0.0.1:9002", f"127.0.0.1:{billing_port}"))
        self.proc = subprocess.Popen(
            [sys.executable, str(CONFIGS / "demo_upstream.py"), str(auth_port), str(billing_port),
             str(proxy_port)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        stdout = self.proc.stdout
        assert stdout is not None
        wait_for(lambda: "demo services" in stdout.readline(), 20, "the demo services")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class ProxyHooksRun(Mitmdump):
    """`proxy-hooks run` as `make run` starts it (events in the copy's .proxy-hooks/, the default),
    with its own confdir; read and stopped as the Mitmdump it runs."""

    def __init__(self, config: Path, proxy_port: int, api: str, confdir: Path):
        self._launch(
            [*proxy_hooks_command(), "run", "--config", str(config), "--listen-port", str(proxy_port),
             "--api", api, "--set", f"confdir={confdir}"],
            confdir,
        )  # fmt: skip
