"""Before any hook: is this request for one of our services, and can it be judged safely?

One function decides for the proxy, `explain` and dry runs alike, so what they say is what the
proxy does: the flow's one service (`addon.matching.resolve_service`), its canonical path
(`addon.paths.canonicalize`), or a refusal with the status the client gets — 400 for a Host or a
path that cannot be read one way only, 421 when the flow names two services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from addon.matching import (
    BadHost,
    CompiledContainer,
    CompiledService,
    FlowNames,
    Misdirected,
    resolve_service,
)
from addon.paths import CanonicalPath, EncodedSlashes, PathRejected, canonicalize


class Refused(Exception):
    """The request is answered by the proxy before any hook runs; `body` is the JSON it gets."""

    def __init__(self, status: int, error: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "reason": reason, **extra}


@dataclass(frozen=True)
class Admitted:
    container: CompiledContainer
    service: CompiledService
    path: CanonicalPath | None  # None for a reject-listed service: its flows pass untouched


def admit(
    containers: Iterable[CompiledContainer],
    names: Callable[[], FlowNames],
    target: str,
    encoded_slashes: EncodedSlashes,
) -> Admitted | None:
    """The service `names()` resolve to and the canonical form of `target` (path and query), or
    None when no service's hosts match. Raises Refused (400, 421). A reject-listed service's
    path is not read: nothing judges it, so nothing refuses or rewrites it."""
    try:
        found = resolve_service(containers, names())
    except BadHost as exc:
        raise Refused(400, "bad Host header", str(exc)) from None
    except Misdirected as exc:
        raise Refused(
            421, "misdirected request: the flow names more than one service", str(exc), services=exc.named
        ) from None
    if found is None:
        return None
    container, service = found
    if service.reserved:
        return Admitted(container, service, None)
    return Admitted(container, service, canonical_path(target, encoded_slashes))


def canonical_path(target: str, encoded_slashes: EncodedSlashes) -> CanonicalPath:
    """`canonicalize`, with its refusal as the 400 the proxy answers."""
    try:
        return canonicalize(target, encoded_slashes)
    except PathRejected as exc:
        raise Refused(400, "request path refused", exc.reason) from None


def path_forms(path: CanonicalPath) -> dict[str, str]:
    """The three forms of a path, as explain and dry runs show them."""
    return {"as_sent": path.as_sent, "canonical": path.canonical, "forwarded": path.forward}


def check_headers(fields: Iterable[tuple[str, str]], read: frozenset[str]) -> None:
    """Headers a service's hooks could read one way and its upstream another: a value folded
    over lines (obs-fold, which some servers unfold into more headers), or a header that a hook,
    a group or a method override reads given more than once (first value here, last or all
    there). Refused with 400."""
    seen: set[str] = set()
    for name, value in fields:
        lowered = name.lower()
        if "\n" in value or "\r" in value:
            raise Refused(400, "bad header", f"header {name!r} is folded over lines (obs-fold)")
        if lowered in read:
            if lowered in seen:
                raise Refused(
                    400,
                    "bad header",
                    f"header {name!r} is given more than once; hooks read it, and servers read "
                    "repeated headers differently",
                )
            seen.add(lowered)
