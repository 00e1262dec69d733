"""The resolved catalog: what will really run, per service, in evaluation order."""

from __future__ import annotations

import os
from typing import Any

from addon.scripts import runtime_name
from addon.store import Snapshot
from addon.validation import resolve_script, script_inside


def resolve_catalog(snapshot: Snapshot) -> dict[str, list[dict[str, Any]]]:
    """Blocking (it looks at the scripts on disk): call it off the event loop."""
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
                    "problem": problem,
                }
            )
        catalog[service] = entries
    return catalog
