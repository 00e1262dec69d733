"""The resolved catalog: what will really run, per service, in evaluation order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from addon.events import QueryBool
from addon.model import Name
from addon.scripts import Runtime, runtime_name
from addon.session_check import handle_problem
from addon.sessions import session_runtime
from addon.store import Snapshot
from addon.validation import resolve_script, script_inside

LoadProblems = dict[tuple[str, str], str]  # (container, script file) -> what its worker said
Catalog = dict[str, list[dict[str, Any]]]


class CatalogQuery(BaseModel):
    """The filters of GET …/catalog; an entry is listed when it meets all that are given.
    Positions stay the hooks' real ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: Name | None = None
    mode: Literal["sync", "async"] | None = None
    runtime: Runtime | None = None
    enabled: QueryBool | None = None
    failure_mode: Literal["closed", "open"] | None = None


def filter_catalog(catalog: Catalog, query: CatalogQuery) -> Catalog:
    given = query.model_dump(exclude={"service"})
    wanted = {name: value for name, value in given.items() if value is not None}
    return {
        service: [entry for entry in entries if all(entry[k] == v for k, v in wanted.items())]
        for service, entries in catalog.items()
        if query.service in (None, service)
    }


def resolve_catalog(snapshot: Snapshot, load_problems: LoadProblems | None = None) -> Catalog:
    """Blocking (it looks at the scripts on disk): call it off the event loop. `load_problems`:
    what the live exec-session workers reported when they loaded a script."""
    root = snapshot.scripts_root
    hooks_file = snapshot.hooks_file
    catalog: Catalog = {}
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
