"""TypeScript hooks (`.ts`, `.mts`): how this machine's node runs them, decided once.

node reads a hook's source from the file the proxy opened and checked (see `addon.scripts`), never
by path, so what turns TypeScript into JavaScript must take a string:

- node >= 22.13 (or >= 23.2) strips the types itself (`module.stripTypeScriptTypes`, which keeps
  every line and column where it was, so errors point at the TypeScript line). Older 22.x lines
  strip only files node loads by path (`--experimental-strip-types`), which our loader never does.
- otherwise `tsx`: the compiler it ships (esbuild) transforms the source with an inline source
  map, so stack traces name the `.ts` file and its line. `make` installs a pinned tsx into the
  project's var/node; an installed proxy takes the `hooks_tsx` option, or a tsx on PATH.

The value handed to node is "node" (node strips), tsx's esbuild executable, or nothing:
then a TypeScript hook fails, as its failure_mode says, with `Runtimes.typescript_missing`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Where `make` installs tsx (TSX_VERSION in the Makefile): beside the addon in a checkout.
PROJECT_TSX = Path(__file__).resolve().parents[1] / "var" / "node" / "node_modules" / "tsx"
SUFFIXES = (".ts", ".mts")
INSTALL_HINT = (
    "TypeScript hooks need node >= 22.13 (it strips types itself) or tsx: in a checkout `make "
    "install` puts a pinned tsx in var/node; elsewhere `npm install tsx` and point the hooks_tsx "
    "option at its folder (or put tsx on PATH)"
)


@functools.lru_cache(maxsize=8)
def node_version(node: str) -> tuple[int, int, int] | None:
    """`node --version`, asked once per node (a few tens of ms, at start-up)."""
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\S*", out.stdout.strip())
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def strips_types(version: tuple[int, int, int] | None) -> bool:
    """Whether this node has `module.stripTypeScriptTypes` (22.13+ on the 22 line, 23.2+)."""
    if version is None:
        return False
    return version >= (23, 2, 0) or (22, 13, 0) <= version < (23, 0, 0)


def tsx_package(given: str | None) -> Path | None:
    """The tsx package folder: `given` (the folder, or its executable), else the project's, else
    the tsx on PATH (its executable is a link into the package)."""
    candidates = [given] if given else [str(PROJECT_TSX), shutil.which("tsx")]
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(os.path.realpath(candidate))
        for folder in (path, *path.parents):
            if (folder / "package.json").is_file():
                return folder if folder.name == "tsx" else None
    return None


def esbuild_of(tsx: Path) -> Path | None:
    """The esbuild executable of the esbuild tsx depends on (found as node's require would find
    it from tsx): its platform package's binary, else the package's own bin/esbuild."""
    for folder in (tsx, *tsx.parents):
        if folder.name == "node_modules":
            continue
        package = folder / "node_modules" / "esbuild"
        if (package / "package.json").is_file():
            binaries = sorted(package.parent.glob("@esbuild/*/bin/esbuild"))
            found = [b for b in binaries if _runs_here(b)] or [package / "bin" / "esbuild"]
            return found[0] if os.access(found[0], os.X_OK) else None
    return None


def _runs_here(binary: Path) -> bool:
    """The platform package for this machine (npm installs only that one, but a copied
    node_modules may hold others)."""
    machine = {"x86_64": "x64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    return binary.parts[-3] == f"{sys.platform}-{machine}" and os.access(binary, os.X_OK)


def compiler(node: str | None, tsx: str | None) -> tuple[str | None, str]:
    """(what node uses for TypeScript, or None; why not, for the runs that need it)."""
    if node is None:
        return None, "node is not installed (needed for TypeScript hooks)"
    if strips_types(node_version(node)):
        return "node", ""
    package = tsx_package(tsx)
    esbuild = esbuild_of(package) if package is not None else None
    if esbuild is not None:
        return str(esbuild), ""
    if tsx:
        return None, f"hooks_tsx {tsx!r} is not a tsx install (with its esbuild); {INSTALL_HINT}"
    return None, f"{INSTALL_HINT}; this node is {_shown(node_version(node))}"


def _shown(version: tuple[int, int, int] | None) -> str:
    return "of an unknown version" if version is None else "v" + ".".join(map(str, version))
