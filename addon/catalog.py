"""The resolved catalog: what will really run, per service, in evaluation order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from addon.scripts import runtime_name
from addon.session_check import handle_problem
from addon.sessions import session_runtime
from addon.store import Snapshot
from addon.validation import resolve_script, script_inside

LoadProblems = dict[tuple[str, str], str]  # (container, script file) -> what its worker said


def resolve_catalog(
    snapshot: Snapshot, load_problems: LoadProblems | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Blocking (it looks at the scripts on disk): call it off the event loop. `load_problems`:
    what the live exec-session workers reported when they loaded a script."""
    root = snapshot.scripts_root
    hooks_file = snapshot.hooks_file
    catalog: dict[str, list[dict[str, Any]]] = {}
    for service in hooks_file.services:
        entries = []
        for position, hook in enumerate(hooks_file.hooks.get(service, [])):
            script = resolve_script(root, hook.script.path)
            inside = script_inside(root, hook.script.path)
            runtime = runtime_name(script)
            exists = inside and script.is_file()
            problem = None
            if not inside:
                problem = "resolves outside the scripts folder"
            elif not exists:
                problem = "script file not found"
            elif runtime == "exec" and not os.access(script, os.X_OK):
                problem = "not executable (chmod +x, or use .py/.js/.sh)"
            session = _session(snapshot.container, hook.script.execId, script, load_problems or {})
            if problem is None and session is not None:
                problem = session["problem"]
            entries.append(
                {
                    "id": hook.id,
                    "position": position,
                    "enabled": hook.enabled,
                    "mode": hook.mode,
                    "failure_mode": hook.failure_mode,
                    "timeout": hook.timeout,
                    "match": hook.match.model_dump(mode="json"),
                    "applies_to": None
                    if hook.applies_to is None
                    else hook.applies_to.model_dump(mode="json"),
                    "script": hook.script.model_dump(mode="json"),
                    "file": str(script),
                    "runtime": runtime,
                    "exists": exists,
                    "session": session,
                    "problem": problem,
                }
            )
        catalog[service] = entries
    return catalog


def _session(
    container: str, exec_id: str | None, script: Path, load_problems: LoadProblems
) -> dict[str, Any] | None:
    """How a hook with execId runs: in which session, and what stops its script loading."""
    if exec_id is None:
        return None
    runtime = session_runtime(script)
    if runtime is None:
        note = f"{runtime_name(script)} scripts cannot be loaded as modules: one process per run"
        return {"exec_id": exec_id, "runtime": None, "problem": None, "note": note}
    problem = load_problems.get((container, str(script))) or handle_problem(script)
    return {"exec_id": exec_id, "runtime": runtime, "problem": problem, "note": None}


def session_problems(snapshot: Snapshot, load_problems: LoadProblems | None = None) -> list[dict[str, Any]]:
    """Every exec-session hook whose script cannot serve: for /healthz. Blocking, like the catalog."""
    found = []
    for service, entries in resolve_catalog(snapshot, load_problems).items():
        for entry in entries:
            session = entry["session"]
            if session is not None and session["problem"] is not None:
                found.append(
                    {
                        "service": service,
                        "hook": entry["id"],
                        "exec_id": session["exec_id"],
                        "script": entry["script"]["path"],
                        "problem": session["problem"],
                    }
                )
    return found
