"""The wheel users install holds every module and data file of the tree: built for real, offline
(`pip wheel --no-build-isolation`, the build backend from the test extra), and compared with
what git tracks. An editable install cannot show this; a hand-listed package set once shipped a
wheel without addon/hosts/, and every hook of an installed proxy failed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.harness import ROOT

PACKAGES = ("addon", "control_api")


def tracked(*paths: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def test_the_wheel_holds_every_module_and_host_file(tmp_path: Path) -> None:
    # From a clean copy of what git tracks: setuptools reuses a build/ folder it finds, which
    # can hold files the configuration no longer ships.
    source = tmp_path / "source"
    for name in tracked():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = (tmp_path / "dist").glob("proxy_hooks-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith(tuple(f"{p}/" for p in PACKAGES))}
    missing = {name for name in tracked(*PACKAGES) if not name.endswith(".md")} - shipped
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert {"addon/hosts/node_host.cjs", "addon/hosts/spawner.py", "addon/proxy_hooks.py"} <= shipped
    # The dashboard works offline: its page, modules and vendored builds (and their licenses) ship.
    assert {
        "control_api/ui/index.html",
        "control_api/ui/app.js",
        "control_api/ui/vendor/htm-preact-standalone.module.js",
        "control_api/ui/vendor/uPlot.iife.min.js",
        "control_api/ui/vendor/LICENSE.uplot.txt",
        "control_api/ui/vendor/VERSIONS",
    } <= shipped
