"""The eight Proxy Hooks endpoints of seed 000, plus the bulk PUT, under
`/api/v1/containers/{id}/proxy/hooks`.

Every write checks, in this order: the container, service and hook exist (404), `If-Match` is
present (428) and names the current version or is `*` (412), the body is valid (422). Before
any of these, the door (`control_api.access`) has answered 421, 403, 401 or 415. The store then
re-checks the version inside its lock, so a write that raced another still gets a 412.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from addon import edits
from addon.catalog import script_problems
from addon.model import Hook, HookCreate, HookList, HookMove, HookReplace
from addon.store import (
    Change,
    FileUnusable,
    HooksSource,
    ReadOnlyFile,
    Snapshot,
    StoreUnavailable,
    VersionMismatch,
    utc_now,
)
from addon.validation import (
    FileRefs,
    HookRefs,
    InvalidInput,
    Problem,
    check_model,
    duplicate_ids,
    hook_problems,
    in_order,
    json_object,
)
from control_api import schemas
from control_api.envelope import ApiError, not_found, ok
from control_api.keys import CONTAINERS, ETAG, MAX_BODY_BYTES
from control_api.operations import TAG_PROXY_HOOKS, WRITE_ERRORS, Operation, Route
from control_api.preconditions import expected_version, precondition_failed

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

CONTAINER = "/api/v1/containers/{id}"
BASE = CONTAINER + "/proxy/hooks"


def hook_view(position: int, hook: Hook) -> dict[str, Any]:
    """A hook as the API shows it: id and position first, then what is stored."""
    data = hook.model_dump(mode="json", exclude_none=True)
    data["version"] = hook.hook_version  # a hand-written hook without one reads as 1
    return {"id": data.pop("id"), "position": position, **data}


def stored_view(snapshot: Snapshot, service: str, hook_id: str | None) -> dict[str, Any]:
    """A hook as a write left it (the store sets its version and keeps the timestamps of an
    unchanged hook), by id."""
    return hook_view(*find_hook(snapshot, service, hook_id or ""))


def _versioned(snapshot: Snapshot, **data: Any) -> dict[str, Any]:
    return {**data, "file_version": snapshot.version, "etag": snapshot.etag}


def invalid(problems: list[Problem]) -> ApiError:
    return ApiError(422, "Invalid hook", "VALIDATION_ERROR", problems)


async def load_container(request: web.Request) -> tuple[HooksSource, Snapshot]:
    containers = request.app[CONTAINERS]
    store = containers.get(request.match_info["id"])
    if store is None:
        served = ", ".join(name for name, _ in containers) or "none"
        raise not_found("id", f"container {request.match_info['id']!r} (served: {served})")
    snapshot = await asyncio.to_thread(store.read)
    request[ETAG] = snapshot.etag
    return store, snapshot


def _service_hooks(snapshot: Snapshot, service: str) -> list[Hook]:
    try:
        return edits.service_hooks(snapshot.hooks_file, service)
    except edits.NotFound as exc:
        raise not_found(exc.field, str(exc)) from None


def find_hook(snapshot: Snapshot, service: str, hook_id: str) -> tuple[int, Hook]:
    try:
        return edits.find_hook(snapshot.hooks_file, service, hook_id)
    except edits.NotFound as exc:
        raise not_found(exc.field, str(exc)) from None


async def read_body(request: web.Request) -> bytes:
    """The body, or 413 in the envelope past the limit."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413, f"Request body too large (limit {MAX_BODY_BYTES // 1024} KiB)", "PAYLOAD_TOO_LARGE"
        ) from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or 422 (malformed, not an object, nested too deep)."""
    raw = await read_body(request)
    try:
        return json_object(raw)
    except InvalidInput as exc:
        raise invalid(exc.problems) from None


def _valid(model: type[M], data: dict[str, Any], problems: list[Problem]) -> M:
    """`data` as `model`, or 422 with every problem: pydantic's field rules and the rules that
    need the container (`problems`, found on the same body read leniently) together."""
    body, field_problems = check_model(model, data)
    everything = in_order(field_problems + problems)
    if everything or body is None:
        raise invalid(everything)
    return body


def _ref_problems(snapshot: Snapshot, hooks: list[tuple[str, HookRefs]]) -> list[Problem]:
    """What the hooks being written refer to must exist now: their groups, and their scripts
    inside the scripts folder (and, for an exec session, defining handle). `hooks` are
    (where in the body, refs). Blocking (it looks at the scripts): run it off the loop."""
    hooks_file, root = snapshot.hooks_file, snapshot.scripts_root
    inside: dict[str, bool] = {}
    known: dict[tuple[str, bool], list[Problem]] = {}
    refs = FileRefs.of(hooks_file)
    return [
        problem.under(where) if where else problem
        for where, hook in hooks
        for problem in hook_problems(
            hook, hooks_file.container, hooks_file.groups, root, inside, hooks_file.environments
        )
        + ([] if refs.remote(hook) else script_problems(hook, root, known))  # remote: no local file
    ]


def _name_problems(
    snapshot: Snapshot,
    written: list[tuple[str, HookRefs]],
    replaced: Callable[[str, Hook], bool] = lambda service, hook: False,
) -> list[Problem]:
    return edits.name_problems(snapshot.hooks_file, written, replaced)


@dataclass(frozen=True)
class _Write:
    store: HooksSource
    snapshot: Snapshot
    service: str
    hook_id: str | None
    expected: int | None  # None: If-Match: *


async def _begin_write(request: web.Request) -> _Write:
    """The checks every write makes before reading its body, in the contract's order: 404 for
    the container, service and (when the route names one) hook, then 428 and 412."""
    store, snapshot = await load_container(request)
    service = request.match_info["service"]
    hook_id = request.match_info.get("hookId")
    if hook_id is None:
        _service_hooks(snapshot, service)
    else:  # the path may name the hook; the write goes by its id
        hook_id = find_hook(snapshot, service, hook_id)[1].id
    return _Write(store, snapshot, service, hook_id, expected_version(request, snapshot))


async def _commit(request: web.Request, write: _Write, change: Change[T]) -> tuple[Snapshot, T]:
    """Run `change` in the store's transaction; it re-checks the version under the lock."""
    try:
        snapshot, result = await asyncio.to_thread(write.store.write, write.expected, change)
    except VersionMismatch as exc:
        request[ETAG] = exc.current.etag
        raise precondition_failed() from None
    except edits.NotFound as exc:
        raise not_found(exc.field, str(exc)) from None
    except InvalidInput as exc:
        raise invalid(exc.problems) from None
    except StoreUnavailable as exc:
        raise ApiError(
            503,
            f"The hooks cannot be changed now: {exc}. The proxies keep enforcing the last good "
            "version; retry once the database is reachable again",
            "STORE_UNAVAILABLE",
        ) from None
    except FileUnusable as exc:
        raise ApiError(
            409,
            "The hooks file on disk is invalid; fix or restore it, then retry",
            "FILE_INVALID",
            exc.problems,
        ) from None
    except ReadOnlyFile as exc:
        raise ApiError(409, str(exc), exc.code) from None
    request[ETAG] = snapshot.etag
    return snapshot, result


async def list_container_hooks(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    hooks_file = snapshot.hooks_file
    hooks = {
        service: [hook_view(i, h) for i, h in enumerate(hooks_file.hooks.get(service, []))]
        for service in edits.hookable_services(hooks_file)
    }
    return ok("Proxy hooks listed successfully", _versioned(snapshot, hooks=hooks))


async def list_service_hooks(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    service = request.match_info["service"]
    hooks = [hook_view(i, h) for i, h in enumerate(_service_hooks(snapshot, service))]
    return ok("Service hooks listed successfully", _versioned(snapshot, service=service, hooks=hooks))


async def get_hook(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    position, hook = find_hook(snapshot, request.match_info["service"], request.match_info["hookId"])
    return ok("Hook retrieved successfully", _versioned(snapshot, hook=hook_view(position, hook)))


async def create_hook(request: web.Request) -> web.Response:
    write = await _begin_write(request)
    data = await _json_body(request)
    count = len(_service_hooks(write.snapshot, write.service))
    written = [("", HookRefs.read(data))]
    problems = await asyncio.to_thread(_ref_problems, write.snapshot, written)
    problems += _name_problems(write.snapshot, written)
    body = _valid(HookCreate, data, problems + edits.insert_problems(count, data.get("position")))
    now = utc_now()
    snapshot, (_, hook) = await _commit(
        request, write, lambda f: edits.insert_hook(f, write.service, body, now)
    )
    view = stored_view(snapshot, write.service, hook.id)
    return ok("Hook created successfully", _versioned(snapshot, hook=view), 201)


async def replace_hook(request: web.Request) -> web.Response:
    write = await _begin_write(request)
    hook_id = write.hook_id or ""
    data = await _json_body(request)
    position, _ = find_hook(write.snapshot, write.service, hook_id)
    echoed = edits.replace_problems(hook_id, position, data.get("id"), data.get("position"))
    written = [("", replace(HookRefs.read(data), id=hook_id))]
    problems = await asyncio.to_thread(_ref_problems, write.snapshot, written)
    problems += _name_problems(write.snapshot, written)
    body = _valid(HookReplace, data, problems + echoed)
    now = utc_now()
    snapshot, _ = await _commit(
        request, write, lambda f: edits.replace_hook(f, write.service, hook_id, body, now)
    )
    return ok(
        "Hook updated successfully", _versioned(snapshot, hook=stored_view(snapshot, write.service, hook_id))
    )


async def move_hook(request: web.Request) -> web.Response:
    write = await _begin_write(request)
    hook_id = write.hook_id or ""
    data = await _json_body(request)
    _, moved = find_hook(write.snapshot, write.service, hook_id)
    count = len(_service_hooks(write.snapshot, write.service))
    # A move writes the hook again: what it refers to must be there, as for any write.
    problems = await asyncio.to_thread(_ref_problems, write.snapshot, [("", HookRefs.of(moved))])
    body = _valid(HookMove, data, problems + edits.move_problems(count, data.get("position")))
    snapshot, (position, hook) = await _commit(
        request, write, lambda f: edits.move_hook(f, write.service, hook_id, body.position)
    )
    return ok("Hook moved successfully", _versioned(snapshot, hook=hook_view(position, hook)))


async def clear_hooks(request: web.Request) -> web.Response:
    write = await _begin_write(request)
    snapshot, removed = await _commit(request, write, lambda f: edits.clear_hooks(f, write.service))
    return ok("Service hooks cleared", _versioned(snapshot, removed=removed))


async def delete_hook(request: web.Request) -> web.Response:
    write = await _begin_write(request)
    hook_id = write.hook_id or ""
    snapshot, _ = await _commit(request, write, lambda f: edits.delete_hook(f, write.service, hook_id))
    return ok("Hook removed successfully", _versioned(snapshot))


async def replace_service_hooks(request: web.Request) -> web.Response:
    write = await _begin_write(request)
    data = await _json_body(request)
    items = data.get("hooks")
    refs = [
        (f"hooks[{i}]", HookRefs.read(item))
        for i, item in enumerate(items if isinstance(items, list) else [])
    ]
    problems = await asyncio.to_thread(_ref_problems, write.snapshot, refs)
    problems += duplicate_ids((where, hook.id) for where, hook in refs)
    problems += _name_problems(write.snapshot, refs, lambda service, _: service == write.service)
    body = _valid(HookList, data, problems)
    now = utc_now()
    snapshot, _ = await _commit(request, write, lambda f: edits.replace_all(f, write.service, body, now))
    views = [hook_view(i, h) for i, h in enumerate(snapshot.hooks_file.hooks.get(write.service, []))]
    return ok("Service hooks replaced", _versioned(snapshot, service=write.service, hooks=views))


# The seed's eight endpoints under the seed SDK's names, and the bulk PUT in the same style.
ROUTES = (
    Route("GET", BASE, list_container_hooks, Operation(
        "listContainerProxyHooks", TAG_PROXY_HOOKS, "List all hooks for a container",
        schemas.ContainerHooks, "Proxy hooks listed successfully",
    )),
    Route("GET", BASE + "/{service}", list_service_hooks, Operation(
        "listContainerProxyServiceHooks", TAG_PROXY_HOOKS, "List hooks for a service",
        schemas.ServiceHooks, "Service hooks listed successfully",
    )),
    Route("POST", BASE + "/{service}", create_hook, Operation(
        "addContainerProxyHook", TAG_PROXY_HOOKS, "Append or insert a new hook",
        schemas.OneHook, "Hook created successfully", 201, HookCreate,
        errors=WRITE_ERRORS, if_match=True,
    )),
    Route("PUT", BASE + "/{service}", replace_service_hooks, Operation(
        "replaceContainerProxyServiceHooks", TAG_PROXY_HOOKS, "Replace a service's hooks in one write",
        schemas.ServiceHooks, "Service hooks replaced", body=HookList,
        errors=WRITE_ERRORS, if_match=True,
    )),
    Route("DELETE", BASE + "/{service}", clear_hooks, Operation(
        "clearContainerProxyServiceHooks", TAG_PROXY_HOOKS, "Clear all hooks for a service",
        schemas.Cleared, "Service hooks cleared", errors=(404, 428, 412, 409), if_match=True,
    )),
    Route("GET", BASE + "/{service}/{hookId}", get_hook, Operation(
        "getContainerProxyHook", TAG_PROXY_HOOKS, "Get a single hook",
        schemas.OneHook, "Hook retrieved successfully",
    )),
    Route("PATCH", BASE + "/{service}/{hookId}", replace_hook, Operation(
        "updateContainerProxyHook", TAG_PROXY_HOOKS, "Replace a hook in place",
        schemas.OneHook, "Hook updated successfully", body=HookReplace,
        errors=WRITE_ERRORS, if_match=True,
    )),
    Route("DELETE", BASE + "/{service}/{hookId}", delete_hook, Operation(
        "removeContainerProxyHook", TAG_PROXY_HOOKS, "Remove a single hook",
        schemas.Versioned, "Hook removed successfully", errors=(404, 428, 412, 409), if_match=True,
    )),
    Route("PATCH", BASE + "/{service}/{hookId}/position", move_hook, Operation(
        "moveContainerProxyHook", TAG_PROXY_HOOKS, "Move a hook to a new position",
        schemas.OneHook, "Hook moved successfully", body=HookMove,
        errors=WRITE_ERRORS, if_match=True,
    )),
)  # fmt: skip
