"""Cached verdicts: a hook with `cache` reuses its script's verdict for equal requests.

What makes two requests equal is the hook's `vary` (the author's statement of what the verdict
depends on). The key is built from what the proxy enforces on, never the raw bytes: `path` is
the canonical path (`addon.paths`), `method` is the method together with every method a
framework may act on instead (override headers, `_method`: `RequestFacts.other_methods`), so a
cached pass for `GET /x` is never reused for a `GET /x` that an upstream would run as `DELETE`.

Only what a script decided is cached (continued, modified, responded, blocked: never a failure
or a timeout), only in the request phase (a response-phase verdict depends on the response), and
only for sync hooks. Entries live per hook in a bounded LRU and are dropped when the hook's
*stamp* changes: the file version (any change of the hook, or of anything else in the file),
the script file's mtime/size/inode, or its environment's values.
"""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from addon.engine import Verdict
from addon.matching import CompiledHook, RequestFacts
from addon.model import HookCache
from addon.protocol import Phase
from addon.validation import resolve_script

MAX_ENTRIES_PER_HOOK = 1024  # module constant: tests may patch it
CACHEABLE = frozenset({"continued", "modified", "responded", "blocked"})

Key = tuple[Any, ...]
Stamp = tuple[Any, ...]


@dataclass(frozen=True)
class CacheRequest:
    """What a key may read of a request besides its facts; `headers` only when `vary` names a
    header (a cache hit builds no script event: the key reads the request, never the event)."""

    container: str
    phase: Phase
    query: str
    headers: Callable[[], Iterable[tuple[str, str]]]


def request_key(vary: list[str], facts: RequestFacts, request: CacheRequest) -> Key:
    """The parts of the request `vary` names, in `vary`'s order (each tagged with its name)."""
    parts: list[Any] = []
    headers: tuple[tuple[str, str], ...] | None = None
    for element in vary:
        if element == "method":
            parts.append(("method", facts.method, tuple(sorted(facts.other_methods))))
        elif element == "path":
            parts.append(("path", facts.path))
        elif element == "query":
            parts.append(("query", request.query))
        elif element == "client":
            parts.append(("client", facts.client_address))
        elif element == "user":
            parts.append(("user", facts.user))
        else:  # header:<name>, names lower-case: every value, in order (absent: empty)
            name = element.partition(":")[2]
            if headers is None:
                headers = tuple(request.headers())
            values = tuple(v for k, v in headers if k.lower() == name)
            parts.append(("header", name, values))
    return tuple(parts)


def hook_stamp(hook: CompiledHook, version: int, scripts_root: Path) -> Stamp | None:
    """What the entries of `hook` are valid for; None when the script cannot be stat'ed (then
    nothing is cached: the run itself says what is wrong). A remote hook: the file version."""
    if hook.remote_url is not None:
        return (version, hook.remote_url, "")
    try:
        info = os.stat(_script_file(scripts_root, hook.hook.script.path))
    except OSError:
        return None
    return (version, info.st_mtime_ns, info.st_size, info.st_ino, hook.environment.digest)


@functools.lru_cache(maxsize=1024)
def _script_file(scripts_root: Path, script_path: str) -> str:
    """`resolve_script` as a string, worked out once (pathlib's join costs more than the stat)."""
    return str(resolve_script(scripts_root, script_path))


@dataclass
class _Entries:
    stamp: Stamp
    verdicts: OrderedDict[Key, tuple[float, Verdict]] = field(default_factory=OrderedDict)


class VerdictCache:
    """The cached verdicts of one proxy, per (container, hook id)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._hooks: dict[tuple[str, str], _Entries] = {}

    async def run(
        self,
        hook: CompiledHook,
        facts: RequestFacts,
        request: CacheRequest,
        version: int,
        scripts_root: Path,
        run: Callable[[], Awaitable[Verdict]],
    ) -> Verdict:
        """The cached verdict for this request when there is one, else `run()`'s (kept when the
        script gave it)."""
        settings = hook.hook.cache
        if settings is None or hook.hook.mode != "sync" or request.phase != "request":
            return await run()
        stamp = hook_stamp(hook, version, scripts_root)
        if stamp is None:
            return await run()
        where = (request.container, hook.id)
        key = request_key(settings.vary, facts, request)
        cached = self._lookup(where, stamp, key)
        if cached is not None:
            return cached
        verdict = await run()
        if verdict.outcome in CACHEABLE:
            self._store(where, stamp, key, verdict, settings)
        return verdict

    def _lookup(self, where: tuple[str, str], stamp: Stamp, key: Key) -> Verdict | None:
        entries = self._hooks.get(where)
        if entries is None:
            return None
        if entries.stamp != stamp:  # the hook, its script or the file changed: start over
            del self._hooks[where]
            return None
        found = entries.verdicts.get(key)
        if found is None:
            return None
        expires, verdict = found
        if self.clock() >= expires:
            del entries.verdicts[key]
            return None
        entries.verdicts.move_to_end(key)
        return Verdict(verdict.outcome, verdict.answer, verdict.reason, None, cached=True)

    def _store(
        self, where: tuple[str, str], stamp: Stamp, key: Key, verdict: Verdict, settings: HookCache
    ) -> None:
        entries = self._hooks.get(where)
        if entries is None or entries.stamp != stamp:
            entries = self._hooks[where] = _Entries(stamp)
        entries.verdicts[key] = (self.clock() + settings.ttl_ms / 1000, verdict)
        entries.verdicts.move_to_end(key)
        while len(entries.verdicts) > MAX_ENTRIES_PER_HOOK:
            entries.verdicts.popitem(last=False)

    def entries(self, container: str, hook_id: str) -> int:
        found = self._hooks.get((container, hook_id))
        return 0 if found is None else len(found.verdicts)
