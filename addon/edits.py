"""The changes the control API makes to a hooks file, as pure functions.

Each takes the current `HooksFile` and returns the changed one with a result; the store runs
them inside its write transaction, so they see the file exactly as it is on disk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from addon.model import (
    RESERVED_SERVICES,
    BulkUpsert,
    ContainerApply,
    Hook,
    HookCreate,
    HookList,
    HookReplace,
    HooksFile,
    reserved_service,
    spec_fields,
)
from addon.store import new_hook_id
from addon.validation import (
    NAMES_UNIQUE,
    HookRefs,
    InvalidInput,
    Problem,
    duplicate_ids,
    duplicate_names,
)
from addon.versions import content


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


def find_hook(hooks_file: HooksFile, service: str, ref: str) -> tuple[int, Hook]:
    """A hook by its id or, failing that, its name. A name can never look like an id
    (`addon.model.HookName`), so the two cannot pick different hooks."""
    hooks = service_hooks(hooks_file, service)
    for key in ("id", "name"):
        for position, hook in enumerate(hooks):
            if getattr(hook, key) == ref:
                return position, hook
    raise NotFound("hookId", f"hook {ref!r} in service {service!r}")


def hook_id_of(hooks_file: HooksFile, service: str, ref: str) -> str:
    """The id `ref` stands for: the id of the service's hook named so, else `ref` itself (the
    history of a deleted hook is still asked for by its id)."""
    for hook in hooks_file.hooks.get(service, []):
        if hook.name == ref and hook.id:
            return hook.id
    return ref


def name_problems(
    hooks_file: HooksFile, written: list[tuple[str, HookRefs]], replaced: Callable[[str, Hook], bool]
) -> list[Problem]:
    """A write's names against each other and against the hooks that stay (all but those
    `replaced` says the write takes out), naming both places: checked on the body as sent, so
    a clash is reported with every other problem. `written` are (where in the body, refs)."""
    taken = {
        hook.name: (f"hooks.{service}[{position}]", hook.id)
        for service, hooks in hooks_file.hooks.items()
        for position, hook in enumerate(hooks)
        if hook.name and not replaced(service, hook)
    }
    problems = []
    for where, refs in written:
        other = taken.get(refs.name) if refs.name else None
        if other is not None and other[1] != refs.id:
            problems.append(
                Problem(
                    f"{where}.name" if where else "name",
                    f"{refs.name!r} is already the name of the hook at {other[0]} (id {other[1]}); "
                    f"{NAMES_UNIQUE}",
                )
            )
    return problems + duplicate_names((where, refs.name) for where, refs in written)


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


# --- whole-container writes: apply (PUT) and bulk upsert (PATCH) ---


def service_problem(hooks_file: HooksFile, service: str, where: str) -> Problem | None:
    """Why a body may not write hooks of `service` (not defined, reject-listed), at `where`."""
    try:
        service_hooks(hooks_file, service)
    except NotFound as exc:
        return Problem(where, f"no {exc}" if service not in RESERVED_SERVICES else str(exc))
    return None


@dataclass(frozen=True)
class ServiceDiff:
    """What a write did to one service's hooks, by id: a hook kept with the same content is
    `unchanged` wherever it moved."""

    added: list[str]
    updated: list[str]
    removed: list[str]
    unchanged: list[str]

    @classmethod
    def between(cls, before: list[Hook], after: list[Hook]) -> ServiceDiff:
        old = {hook.id or "": content(hook) for hook in before}
        kept = {hook.id for hook in after}
        diff = cls([], [], [hook_id for hook_id in old if hook_id not in kept], [])
        for hook in after:
            hook_id = hook.id or ""
            if hook_id not in old:
                diff.added.append(hook_id)
            elif old[hook_id] == content(hook):
                diff.unchanged.append(hook_id)
            else:
                diff.updated.append(hook_id)
        return diff


def apply_container(
    hooks_file: HooksFile, body: ContainerApply, now: dt.datetime
) -> tuple[HooksFile, dict[str, ServiceDiff]]:
    """The listed services' lists replaced (ids kept when given, minted when not), and with
    `prune` every other service's emptied, as one change."""
    services = list(body.hooks)
    if body.prune:
        services += [
            s for s in hookable_services(hooks_file) if s not in body.hooks and hooks_file.hooks.get(s)
        ]
    changed = hooks_file
    for service in services:
        changed, _ = replace_all(changed, service, HookList(hooks=body.hooks.get(service, [])), now)
    _raise(duplicate_ids(
        (f"hooks.{s}[{i}]", hook.id) for s in body.hooks for i, hook in enumerate(changed.hooks[s])
    ))  # fmt: skip
    diffs = {s: ServiceDiff.between(hooks_file.hooks.get(s, []), changed.hooks.get(s, [])) for s in services}
    return changed, diffs


@dataclass(frozen=True)
class Upserted:
    service: str
    action: str  # created, updated, unchanged
    hook_id: str


def _upsert_target(hooks: list[Hook], hook: HookReplace) -> int | None:
    for key, value in (("id", hook.id), ("name", hook.name)):
        if value is not None:
            for position, existing in enumerate(hooks):
                if getattr(existing, key) == value:
                    return position
    return None


def upsert_hooks(
    hooks_file: HooksFile, body: BulkUpsert, now: dt.datetime
) -> tuple[HooksFile, list[Upserted]]:
    """Each item replaces the hook of its service with the same id (else name), or is appended;
    one change, so one version, for all of them."""
    changed, results = hooks_file, []
    for item in body.items:
        hooks = list(service_hooks(changed, item.service))
        at = _upsert_target(hooks, item.hook)
        if at is None:
            hook = _stored(item.hook, item.hook.id or new_hook_id(), now, now)
            hooks.append(hook)
            action = "created"
        else:
            old = hooks[at]
            hook = _stored(item.hook, old.id or new_hook_id(), old.created_at or now, now)
            hooks[at] = hook
            action = "unchanged" if content(old) == content(hook) else "updated"
        changed = _with_hooks(changed, item.service, hooks)
        results.append(Upserted(item.service, action, hook.id or ""))
    return changed, results
