"""The resolved catalog: what will really run, per service, in evaluation order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from addon.edits import hookable_services
from addon.environments import for_hook, resolve_all
from addon.events import QueryBool
from addon.model import Name
from addon.scripts import Runtime, runtime_name
from addon.session_check import handle_problem
from addon.sessions import session_runtime
from addon.store import Snapshot
from addon.validation import (
    FileRefs,
    HookRefs,
    Problem,
    remote_url,
    resolve_script,
    script_inside,
    service_upstreams,
)

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
    environments = resolve_all(hooks_file)
    upstreams = service_upstreams(hooks_file)
    catalog: Catalog = {}
    for service in hookable_services(hooks_file):
        entries = []
        for position, hook in enumerate(hooks_file.hooks.get(service, [])):
            script = resolve_script(root, hook.script.path)
            url = remote_url(upstreams, hook.script.subdomain, hook.script.path)
            inside = url is not None or script_inside(root, hook.script.path)
            runtime: Runtime = "remote" if url is not None else runtime_name(script)
            exists = url is not None or (inside and script.is_file())  # a remote hook has no file
            problem = None
            if not inside:
                problem = "resolves outside the scripts folder"
            elif not exists:
                problem = "script file not found"
            elif runtime == "exec" and not os.access(script, os.X_OK):
                problem = "not executable (chmod +x, or use .py/.js/.sh)"
            session = (
                None
                if url is not None
                else _session(snapshot.container, hook.script.execId, script, load_problems or {})
            )
            if problem is None and session is not None:
                problem = session["problem"]
            environment = for_hook(environments, hook.environment)
            entries.append(
                {
                    "id": hook.id,
                    "name": hook.name,
                    "version": hook.hook_version,
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
                    "remote_url": url,
                    "environment": {
                        "name": environment.name,
                        "variables": dict(environment.shown),
                        "problem": environment.problem,
                    },
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


def health_problems(
    snapshot: Snapshot, load_problems: LoadProblems | None = None, typescript_missing: str | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """For /healthz: every exec-session hook whose script cannot serve, and, in words, every
    enabled hook whose script is not there, or is TypeScript when nothing here can run that
    (`typescript_missing` says why): it fails as its failure_mode says on every flow it matches.
    Blocking, like the catalog."""
    sessions = []
    missing = []
    for service, entries in resolve_catalog(snapshot, load_problems).items():
        for entry in entries:
            session = entry["session"]
            if session is not None and session["problem"] is not None:
                sessions.append(
                    {
                        "service": service,
                        "hook": entry["id"],
                        "exec_id": session["exec_id"],
                        "script": entry["script"]["path"],
                        "problem": session["problem"],
                    }
                )
            if not entry["enabled"]:
                continue
            where = f"{snapshot.container}/{service} hook {entry['id']} (position {entry['position']})"
            effect = (
                "the flows it matches fail closed (502)"
                if entry["failure_mode"] == "closed"
                else "the flows it matches pass without it (failure_mode open)"
            )
            if not entry["exists"]:
                missing.append(
                    f"{where}: {entry['problem']}: {entry['script']['path']} (scripts folder "
                    f"{snapshot.scripts_root.name}/); {effect} until it is fixed"
                )
            elif entry["runtime"] == "typescript" and typescript_missing is not None:
                script = entry["script"]["path"]
                missing.append(f"{where}: {script}: {typescript_missing}; {effect} until then")
    return sessions, missing


def missing_script(scripts_root: Path, script_path: str) -> str | None:
    """Why a hook's script is not deployed, or None when a file is there (or when the path leads
    out of the folder: a problem of the hooks file itself, see `validation.hook_problems`)."""
    if not script_inside(scripts_root, script_path) or resolve_script(scripts_root, script_path).is_file():
        return None
    return (
        f"no script {script_path} in the scripts folder ({scripts_root.name}/): deploy the file "
        "there first, or fix the path"
    )


def script_problems(
    hook: HookRefs, scripts_root: Path, known: dict[tuple[str, bool], list[Problem]] | None = None
) -> list[Problem]:
    """Referential integrity of a hook's script, as deployed now: the file is there and, for a
    hook with execId, defines handle(event). An error for the API's writes and `proxy-hooks
    check`; a hooks file that has one still loads, and the hook fails as its failure_mode says.
    Blocking (it looks at the disk); `known` memoises it per script within one check."""
    if hook.script is None:
        return []
    key = (hook.script, hook.exec_id is not None)
    if known is not None and key in known:
        return known[key]
    problems = []
    missing = missing_script(scripts_root, hook.script)
    if missing is not None:
        problems.append(Problem("script.path", missing))
    elif hook.exec_id is not None:
        problem = handle_problem(resolve_script(scripts_root, hook.script))
        if problem is not None:
            problems.append(Problem("script.path", problem))
    if known is not None:
        known[key] = problems
    return problems


def deployment_problems(refs: FileRefs, scripts_root: Path | None) -> list[Problem]:
    """`script_problems` of every hook of a file."""
    if scripts_root is None:
        return []
    known: dict[tuple[str, bool], list[Problem]] = {}
    return [
        problem.under(f"hooks.{service}[{position}]")
        for service, position, hook in refs.hookable()
        if not refs.remote(hook)  # served over HTTP: no local file to deploy
        for problem in script_problems(hook, scripts_root, known)
    ]
