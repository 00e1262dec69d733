"""Each hook's `version`: 1 when first written, raised by 1 whenever its content changes.

Applied by the store to every write (`HooksStore.write`), so no route can forget it: a hook is
compared with the hook of the same id before the write. A move, or a write that leaves a hook's
content as it was, keeps its version and its `updated_at`.
"""

from __future__ import annotations

from typing import Any

from addon.model import Hook, HooksFile, HookSpec

_CONTENT = frozenset(HookSpec.model_fields)


def content(hook: HookSpec) -> dict[str, Any]:
    """What a hook says (every client-writable field, defaults included): two hooks with equal
    content behave the same, whatever their ids, positions and timestamps."""
    return hook.model_dump(mode="json", include=set(_CONTENT))


def _versioned(hook: Hook, before: Hook | None) -> Hook:
    if before is None:
        return hook if hook.version == 1 else hook.model_copy(update={"version": 1})
    if content(before) == content(hook):
        kept = {"version": before.version, "created_at": before.created_at, "updated_at": before.updated_at}
        return hook.model_copy(update={k: v for k, v in kept.items() if v is not None})
    return hook.model_copy(update={"version": before.hook_version + 1})


def with_versions(before: HooksFile, after: HooksFile) -> HooksFile:
    """`after` with each hook's version set from the hook of the same id in `before`."""
    previous = {hook.id: hook for hooks in before.hooks.values() for hook in hooks if hook.id}
    hooks = {
        service: [_versioned(hook, previous.get(hook.id) if hook.id else None) for hook in service_hooks]
        for service, service_hooks in after.hooks.items()
    }
    return after.model_copy(update={"hooks": hooks})
