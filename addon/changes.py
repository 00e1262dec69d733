"""What a hook's answer did to the exchange, for its run's event (`changes`).

Names and sizes only: never a header's value or a query string, which may carry credentials the
events store must not keep. `None` when the answer changed nothing: a run that continued, was
blocked, failed or only observed (an async hook's answer is never applied), or whose edits were
no-ops (removing a header that was not there). A block or a failure is told by the event's
`outcome` and `status`; `changes` is about what the answer itself edited or answered.

Computed after the answer was applied, from the message as it was and as it is (`MessageShape`
captures what is compared), so it says what happened rather than what was asked. A run that
fails after that keeps only the changes that still reached the upstream or the client
(`addon.enforcer._changes_that_stand`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextChange(_Record):
    before: str
    after: str


class NumberChange(_Record):
    before: int | None = Field(description="null: there was none (a response the hook answered with)")
    after: int


class RequestChanges(_Record):
    method: TextChange | None = None
    path: TextChange | None = Field(None, description="without the query string")
    query_changed: bool = Field(False, description="the query string was changed (its values are not kept)")
    headers_set: list[str] = Field(default_factory=list, description="names only")
    headers_removed: list[str] = Field(default_factory=list, description="names that were present")
    body: NumberChange | None = Field(None, description="replaced: its size in bytes before and after")


class ResponseChanges(_Record):
    synthesized: bool = Field(description="true: the hook answered in the upstream's place")
    status: NumberChange | None = None
    headers_set: list[str] = Field(default_factory=list, description="names only")
    body: NumberChange | None = Field(None, description="its size in bytes before and after")


class RunChanges(_Record):
    """What a run's answer did to the exchange; the event's `changes` (null: nothing)."""

    request: RequestChanges | None = None
    response: ResponseChanges | None = None


class MessageShape(NamedTuple):
    """What `changes` compares of a request before and after an answer was applied."""

    method: str
    path: str  # with the query
    header_names: frozenset[str]  # lower-case
    body_size: int


def request_changes(
    before: MessageShape,
    after: MessageShape,
    headers_set: Iterable[str],
    headers_removed: Iterable[str],
    body_replaced: bool,
) -> RunChanges | None:
    """`headers_set`/`headers_removed`: the names the answer set and removed (a name in both is
    set); `body_replaced`: the answer gave a body (a new one of the same size is still new)."""
    path_before, _, query_before = before.path.partition("?")
    path_after, _, query_after = after.path.partition("?")
    set_names = list(dict.fromkeys(headers_set))
    kept = {name.lower() for name in set_names}
    removed = [
        name
        for name in dict.fromkeys(headers_removed)
        if name.lower() in before.header_names and name.lower() not in kept
    ]
    changes = RequestChanges(
        method=TextChange(before=before.method, after=after.method)
        if before.method != after.method
        else None,
        path=TextChange(before=path_before, after=path_after) if path_before != path_after else None,
        query_changed=query_before != query_after,
        headers_set=set_names,
        headers_removed=removed,
        body=NumberChange(before=before.body_size, after=after.body_size) if body_replaced else None,
    )
    return None if changes == RequestChanges() else RunChanges(request=changes)


def answered(status: int, headers_set: Collection[str], body_size: int) -> RunChanges:
    """A response the hook answered with, in the upstream's place."""
    return RunChanges(
        response=ResponseChanges(
            synthesized=True,
            status=NumberChange(before=None, after=status),
            headers_set=list(headers_set),
            body=NumberChange(before=None, after=body_size),
        )
    )


def response_changes(
    status_before: int, status_after: int, headers_set: Collection[str], body: NumberChange | None
) -> RunChanges | None:
    """An upstream response the hook edited; `body`: sizes when the answer replaced it."""
    changes = ResponseChanges(
        synthesized=False,
        status=NumberChange(before=status_before, after=status_after)
        if status_before != status_after
        else None,
        headers_set=list(headers_set),
        body=body,
    )
    return None if changes == ResponseChanges(synthesized=False) else RunChanges(response=changes)
