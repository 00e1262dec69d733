"""`If-Match: file:v<N>`: required on every write, quoted or bare, weak or strong; `*` matches
whatever version is current (RFC 9110 §13.1.1: the container's file always exists)."""

from __future__ import annotations

import re

from aiohttp import web

from addon.store import Snapshot
from control_api.envelope import ApiError

_ETAG_RE = re.compile(r'^(?:W/)?"?file:v(\d+)"?\Z')


def if_match_versions(header: str) -> set[int]:
    """Every `file:v<N>` named in an If-Match header (a comma-separated list is allowed)."""
    versions = set()
    for token in header.split(","):
        match = _ETAG_RE.match(token.strip())
        if match:
            versions.add(int(match.group(1)))
    return versions


def precondition_failed() -> ApiError:
    return ApiError(412, "etag_mismatch", "PRECONDITION_FAILED")


def expected_version(request: web.Request, snapshot: Snapshot) -> int | None:
    """428 without If-Match, 412 unless it names the current version; else that version, or
    None for `*` (whichever version is current when the write takes the store's lock)."""
    header = request.headers.get("If-Match", "").strip()
    if not header:
        raise ApiError(428, "If-Match header required for this operation", "PRECONDITION_REQUIRED")
    if header == "*":
        return None
    if snapshot.version not in if_match_versions(header):
        raise precondition_failed()
    return snapshot.version
