"""The changes the control API makes to a hooks file, as pure functions.

Each takes the current `HooksFile` and returns the changed one with a result; the store runs
them inside its write transaction, so they see the file exactly as it is on disk.
"""

from __future__ import annotations

import datetime as dt

from addon.model import RESERVED_SERVICES, Hook, HookCreate, HookList, HookReplace, HooksFile, spec_fields
from addon.store import new_hook_id
from addon.validation import InvalidInput, Problem, new_hook_problems


class NotFound(LookupError):
    """An unknown service (or a reject-listed one) or hook id; `field` names which, and the
    message says what is missing in words (the API's 404 `details`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def service_hooks(hooks_file: HooksFile, service: str) -> list[Hook]:
    if service in RESERVED_SERVICES:
        reserved = ", ".join(sorted(RESERVED_SERVICES))
        raise NotFound("service", f"service {service!r} is reject-listed ({reserved}): it has no hooks")
    if service not in hooks_file.services:
        defined = ", ".join(sorted(hooks_file.services)) or "none"
        raise NotFound("service", f"service {service!r} (defined: {defined})")
    return hooks_file.hooks.get(service, [])


def find_hook(hooks_file: HooksFile, service: str, hook_id: str) -> tuple[int, Hook]:
    for position, hook in enumerate(service_hooks(hooks_file, service)):
        if hook.id == hook_id:
            return position, hook
    raise NotFound("hookId", f"hook {hook_id!r} in service {service!r}")


def _with_hooks(hooks_file: HooksFile, service: str, hooks: list[Hook]) -> HooksFile:
    return hooks_file.model_copy(update={"hooks": {**hooks_file.hooks, service: hooks}})


def _stored(body: HookCreate | HookReplace, hook_id: str, created: dt.datetime, now: dt.datetime) -> Hook:
    return Hook.model_validate({**spec_fields(body), "id": hook_id, "created_at": created, "updated_at": now})


def _position_problem(position: int, limit: int, what: str) -> InvalidInput:
    return InvalidInput([Problem("position", f"must be 0-{limit} to {what}, got {position}")])


def insert_hook(
    hooks_file: HooksFile, service: str, body: HookCreate, now: dt.datetime
) -> tuple[HooksFile, tuple[int, Hook]]:
    hooks = list(service_hooks(hooks_file, service))
    position = len(hooks) if body.position is None else body.position
    if position > len(hooks):
        raise _position_problem(position, len(hooks), f"insert into a list of {len(hooks)} hooks")
    hook = _stored(body, new_hook_id(), now, now)
    hooks.insert(position, hook)
    return _with_hooks(hooks_file, service, hooks), (position, hook)


def replace_hook(
    hooks_file: HooksFile, service: str, hook_id: str, body: HookReplace, now: dt.datetime
) -> tuple[HooksFile, tuple[int, Hook]]:
    position, old = find_hook(hooks_file, service, hook_id)
    problems = []
    if body.id is not None and body.id != hook_id:
        problems.append(
            Problem("id", f"must be the id of the hook being replaced ({hook_id}); ids never change")
        )
    if body.position is not None and body.position != position:
        problems.append(
            Problem(
                "position",
                f"must be the hook's current position ({position}); move it with PATCH …/position",
            )
        )
    if problems:
        raise InvalidInput(problems)
    hook = _stored(body, hook_id, old.created_at or now, now)
    hooks = list(service_hooks(hooks_file, service))
    hooks[position] = hook
    return _with_hooks(hooks_file, service, hooks), (position, hook)


def move_hook(
    hooks_file: HooksFile, service: str, hook_id: str, position: int
) -> tuple[HooksFile, tuple[int, Hook]]:
    current, hook = find_hook(hooks_file, service, hook_id)
    hooks = list(service_hooks(hooks_file, service))
    if position >= len(hooks):
        raise _position_problem(position, len(hooks) - 1, f"move within a list of {len(hooks)} hooks")
    hooks.insert(position, hooks.pop(current))
    return _with_hooks(hooks_file, service, hooks), (position, hook)


def delete_hook(hooks_file: HooksFile, service: str, hook_id: str) -> tuple[HooksFile, Hook]:
    position, hook = find_hook(hooks_file, service, hook_id)
    hooks = list(service_hooks(hooks_file, service))
    del hooks[position]
    return _with_hooks(hooks_file, service, hooks), hook


def clear_hooks(hooks_file: HooksFile, service: str) -> tuple[HooksFile, int]:
    removed = len(service_hooks(hooks_file, service))
    return _with_hooks(hooks_file, service, []), removed


def replace_all(
    hooks_file: HooksFile, service: str, body: HookList, now: dt.datetime
) -> tuple[HooksFile, list[Hook]]:
    """Bulk: the service's whole list in one write; ids kept when given, minted when not.

    The list's order is the evaluation order: a `position` echoed from a GET is ignored, so a
    client can fetch the list, reorder it and put it back.
    """
    existing = {hook.id: hook for hook in service_hooks(hooks_file, service)}
    hooks = []
    for item in body.hooks:
        old = existing.get(item.id)
        created = old.created_at if old is not None and old.created_at else now
        hooks.append(_stored(item, item.id or new_hook_id(), created, now))
    problems = new_hook_problems(hooks)
    if problems:
        raise InvalidInput(problems)
    return _with_hooks(hooks_file, service, hooks), hooks
