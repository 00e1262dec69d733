"""The changes the control API makes to a hooks file, as pure functions.

Each takes the current `HooksFile` and returns the changed one with a result; the store runs
them inside its write transaction, so they see the file exactly as it is on disk.
"""

from __future__ import annotations

import datetime as dt

from addon.model import (
    RESERVED_SERVICES,
    Hook,
    HookCreate,
    HookList,
    HookReplace,
    HooksFile,
    reserved_service,
    spec_fields,
)
from addon.store import new_hook_id
from addon.validation import InvalidInput, Problem, duplicate_ids


class NotFound(LookupError):
    """An unknown service (or a reject-listed one) or hook id; `field` names which, and the
    message says what is missing in words (the API's 404 `details`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def reserved(service: str) -> NotFound:
    """The 404 for a reject-listed service, declared or not."""
    return NotFound("service", f"{reserved_service(service)}: it has no hooks")


def hookable_services(hooks_file: HooksFile) -> list[str]:
    """The services that can have hooks: all but the reject-listed ones a file may declare."""
    return [service for service in hooks_file.services if service not in RESERVED_SERVICES]


def service_hooks(hooks_file: HooksFile, service: str) -> list[Hook]:
    if service in RESERVED_SERVICES:
        raise reserved(service)
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


# The rules on `position` and an echoed `id` that need the service's list. The API checks them
# on the body as sent (beside pydantic's field rules, to report everything at once) and the
# edits again on the file as it is under the store's lock. Values of the wrong type are left to
# pydantic.


def _position(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def insert_problems(count: int, position: object) -> list[Problem]:
    """A new hook goes at 0..count (count: append)."""
    at = _position(position)
    if at is None or at <= count:
        return []
    return [Problem("position", f"must be 0-{count} to insert into a list of {count} hooks, got {at}")]


def move_problems(count: int, position: object) -> list[Problem]:
    """A hook moves within 0..count-1."""
    to = _position(position)
    if to is None or to < count:
        return []
    return [Problem("position", f"must be 0-{count - 1} to move within a list of {count} hooks, got {to}")]


def replace_problems(hook_id: str, position: int, given_id: object, given_position: object) -> list[Problem]:
    """A full replace may echo the hook's own id and position, nothing else."""
    problems = []
    if isinstance(given_id, str) and given_id != hook_id:
        problems.append(
            Problem("id", f"must be the id of the hook being replaced ({hook_id}); ids never change")
        )
    at = _position(given_position)
    if at is not None and at != position:
        problems.append(
            Problem(
                "position",
                f"must be the hook's current position ({position}); move it with PATCH …/position",
            )
        )
    return problems


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise InvalidInput(problems)


def insert_hook(
    hooks_file: HooksFile, service: str, body: HookCreate, now: dt.datetime
) -> tuple[HooksFile, tuple[int, Hook]]:
    hooks = list(service_hooks(hooks_file, service))
    _raise(insert_problems(len(hooks), body.position))
    position = len(hooks) if body.position is None else body.position
    hook = _stored(body, new_hook_id(), now, now)
    hooks.insert(position, hook)
    return _with_hooks(hooks_file, service, hooks), (position, hook)


def replace_hook(
    hooks_file: HooksFile, service: str, hook_id: str, body: HookReplace, now: dt.datetime
) -> tuple[HooksFile, tuple[int, Hook]]:
    position, old = find_hook(hooks_file, service, hook_id)
    _raise(replace_problems(hook_id, position, body.id, body.position))
    hook = _stored(body, hook_id, old.created_at or now, now)
    hooks = list(service_hooks(hooks_file, service))
    hooks[position] = hook
    return _with_hooks(hooks_file, service, hooks), (position, hook)


def move_hook(
    hooks_file: HooksFile, service: str, hook_id: str, position: int
) -> tuple[HooksFile, tuple[int, Hook]]:
    current, hook = find_hook(hooks_file, service, hook_id)
    hooks = list(service_hooks(hooks_file, service))
    _raise(move_problems(len(hooks), position))
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
    _raise(duplicate_ids((f"hooks[{index}]", hook.id) for index, hook in enumerate(hooks)))
    return _with_hooks(hooks_file, service, hooks), hooks
