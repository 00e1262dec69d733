"""Before any run: does a script meant for an exec session define `handle`?

The worker's own load is the authority (it reports what really happened, see
`SessionPool.load_problems`); this static look lets `/healthz` and the catalog say so before the
first flow. It only claims a problem when sure: a Python module with no top-level binding named
`handle` at all, a JavaScript file that never mentions `handle`.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from pathlib import Path

from addon.sessions import session_runtime

NO_HANDLE = {
    "python": "has no handle(event) function: a hook with execId runs in an exec session, which calls "
    "the script's handle(event) (define `def handle(event):` or `async def handle(event):` at top level)",
    "node": "has no exported handle(event) function: a hook with execId runs in an exec session, which "
    "calls the script's handle(event) (CommonJS: `exports.handle = async (event) => ...`; ES module: "
    "`export async function handle(event)`)",
}
_JS_HANDLE = re.compile(r"\bhandle\b")


def handle_problem(script: Path) -> str | None:
    """Why `script` cannot serve an exec session, or None when it looks fine (or is not there:
    that has its own message)."""
    runtime = session_runtime(script)
    try:
        info = os.stat(script)
    except OSError:
        return None
    if runtime is None:
        return None
    return _cached_problem(str(script), runtime, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=1024)
def _cached_problem(script: str, runtime: str, _mtime_ns: int, _size: int) -> str | None:
    name = os.path.basename(script)
    try:
        source = Path(script).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if runtime == "node":
        return None if _JS_HANDLE.search(source) else f"{name} {NO_HANDLE['node']}"
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as exc:
        return f"cannot load {name}: SyntaxError: {exc.msg} (line {exc.lineno})"
    return None if _binds_handle(tree.body) else f"{name} {NO_HANDLE['python']}"


def _binds_handle(body: list[ast.stmt]) -> bool:
    """Any top-level way of defining `handle`, including under if/try/with; a star import or
    globals()/setattr()/exec() might, so those count as yes."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == "handle":
            return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            alias.name == "*" or (alias.asname or alias.name).split(".")[0] == "handle"
            for alias in node.names
        ):
            return True
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            if any(isinstance(n, ast.Name) and n.id == "handle" for n in ast.walk(target)):
                return True
        if isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            nested = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                nested.extend(handler.body)
            if _binds_handle(nested):
                return True
        if any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _DYNAMIC
            for n in ast.walk(node)
        ):
            return True
    return False


_DYNAMIC = {"globals", "setattr", "exec", "vars"}  # could bind anything: assume they bind handle
