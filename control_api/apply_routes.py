"""The whole container at once: its document (`GET /api/v1/containers/{id}`, what `proxy-hooks
export` writes back as a hooks file), and the writes under `/api/v1/containers/{id}/proxy/hooks`:
apply (PUT, every listed service's list at once) and bulk upsert (PATCH, seed 002's). Each write
is one versioned write with If-Match, checked like every write (404 → 428 → 412 → 422, every
problem at once)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

from aiohttp import web

from addon import edits
from addon.model import BulkUpsert, ContainerApply
from addon.store import document, utc_now
from addon.validation import HookRefs, Problem, check_model, duplicate_ids, in_order
from control_api import schemas
from control_api.envelope import ApiError, ok
from control_api.hooks_routes import (
    BASE,
    CONTAINER,
    _commit,
    _json_body,
    _name_problems,
    _ref_problems,
    _versioned,
    _Write,
    hook_view,
    invalid,
    load_container,
)
from control_api.operations import TAG_PROXY_HOOKS, WRITE_ERRORS, Operation, Route
from control_api.preconditions import expected_version


async def get_container(request: web.Request) -> web.Response:
    """The container's hooks file as a document: services, groups and environments as the file
    has them (`from_env` as the reference the file holds, never the value), hooks as the
    listings show them."""
    _, snapshot = await load_container(request)
    hooks_file = snapshot.hooks_file
    written = document(hooks_file)
    shown = {field: written.get(field, {}) for field in ("services", "groups", "environments")}
    hooks = {
        service: [hook_view(i, h) for i, h in enumerate(listed)]
        for service, listed in hooks_file.hooks.items()
    }
    data = {"container": hooks_file.container, "scripts_dir": hooks_file.scripts_dir, **shown, "hooks": hooks}
    return ok("Container retrieved successfully", _versioned(snapshot, **data))


async def _begin(request: web.Request) -> _Write:
    store, snapshot = await load_container(request)
    return _Write(store, snapshot, "", None, expected_version(request, snapshot))


def _listed(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


async def apply_container(request: web.Request) -> web.Response:
    write = await _begin(request)
    data = await _json_body(request)
    hooks_file = write.snapshot.hooks_file
    given = data.get("hooks")
    by_service: dict[str, Any] = given if isinstance(given, dict) else {}
    problems: list[Problem] = []
    refs: list[tuple[str, HookRefs]] = []
    for service in by_service:
        problem = edits.service_problem(hooks_file, service, f"hooks.{service}")
        if problem is not None:
            problems.append(problem)
            continue
        refs += [
            (f"hooks.{service}[{i}]", HookRefs.read(item))
            for i, item in enumerate(_listed(by_service, service))
        ]
    problems += await asyncio.to_thread(_ref_problems, write.snapshot, refs)
    problems += duplicate_ids((where, hook.id) for where, hook in refs)
    prune = data.get("prune") is True
    problems += _name_problems(write.snapshot, refs, lambda service, _: prune or service in by_service)
    body, field_problems = check_model(ContainerApply, data)
    everything = in_order(field_problems + problems)
    if everything or body is None:
        raise invalid(everything)
    now = utc_now()
    snapshot, diffs = await _commit(request, write, lambda f: edits.apply_container(f, body, now))
    services = {service: dataclasses.asdict(diff) for service, diff in diffs.items()}
    hooks = {
        service: [hook_view(i, h) for i, h in enumerate(snapshot.hooks_file.hooks.get(service, []))]
        for service in diffs
    }
    return ok("Container hooks applied", _versioned(snapshot, services=services, hooks=hooks))


_ITEM = re.compile(r"^items\[(\d+)\]")


def _item_results(data: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """Seed 002's answer for a refused batch: every item, failed or not, and why."""
    items = _listed(data, "items")
    errors: dict[int, list[str]] = {}
    for problem in problems:
        found = _ITEM.match(problem.field)
        errors.setdefault(int(found.group(1)) if found else -1, []).append(str(problem))
    results = []
    for index, item in enumerate(items):
        hook = item.get("hook") if isinstance(item, dict) else None
        hook_id = hook.get("id") if isinstance(hook, dict) else None
        failed = errors.get(index)
        results.append({
            "index": index,
            "service": item.get("service") if isinstance(item, dict) else None,
            "action": "failed" if failed else "skipped",
            "hook_id": hook_id if isinstance(hook_id, str) else None,
            "error": "; ".join(failed) if failed else None,
        })  # fmt: skip
    failed_count = sum(1 for r in results if r["action"] == "failed")
    return {"success": 0, "failed": failed_count, "results": results}


async def upsert_hooks(request: web.Request) -> web.Response:
    write = await _begin(request)
    data = await _json_body(request)
    hooks_file = write.snapshot.hooks_file
    problems: list[Problem] = []
    refs: list[tuple[str, HookRefs]] = []
    for index, item in enumerate(_listed(data, "items")):
        service = item.get("service") if isinstance(item, dict) else None
        if isinstance(service, str):
            problem = edits.service_problem(hooks_file, service, f"items[{index}].service")
            if problem is not None:
                problems.append(problem)
                continue
        raw = item.get("hook") if isinstance(item, dict) else None
        found = HookRefs.read(raw)
        if found.id is None and found.name is not None and isinstance(service, str):
            target = next((h for h in hooks_file.hooks.get(service, []) if h.name == found.name), None)
            found = dataclasses.replace(found, id=target.id if target else None)
        refs.append((f"items[{index}].hook", found))
    problems += await asyncio.to_thread(_ref_problems, write.snapshot, refs)
    problems += duplicate_ids((where, hook.id) for where, hook in refs)
    problems += _name_problems(write.snapshot, refs)
    body, field_problems = check_model(BulkUpsert, data)
    everything = in_order(field_problems + problems)
    if everything or body is None:
        raise ApiError(422, "Invalid hook", "VALIDATION_ERROR", everything, _item_results(data, everything))
    now = utc_now()
    snapshot, upserted = await _commit(request, write, lambda f: edits.upsert_hooks(f, body, now))
    results = [
        {"index": i, "service": u.service, "action": u.action, "hook_id": u.hook_id, "error": None}
        for i, u in enumerate(upserted)
    ]
    data = {"success": len(results), "failed": 0, "results": results}
    return ok("Hooks upserted", _versioned(snapshot, **data))


ROUTES = (
    Route("GET", CONTAINER, get_container, Operation(
        "getContainer", TAG_PROXY_HOOKS,
        "Get the whole container as its hooks file holds it (services, groups, environments, hooks)",
        schemas.ContainerDocument, "Container retrieved successfully",
    )),
    Route("PUT", BASE, apply_container, Operation(
        "applyContainerProxyHooks", TAG_PROXY_HOOKS, "Apply every listed service's hooks in one write",
        schemas.Applied, "Container hooks applied", body=ContainerApply,
        errors=WRITE_ERRORS, if_match=True,
    )),
    Route("PATCH", BASE, upsert_hooks, Operation(
        "upsertContainerProxyHooks", TAG_PROXY_HOOKS, "Create or update many hooks at once (all or none)",
        schemas.Upserted, "Hooks upserted", body=BulkUpsert,
        errors=WRITE_ERRORS, if_match=True,
    )),
)  # fmt: skip
