"""Script protocol v1, machine-readable: the phases a hook runs in, and the JSON Schemas of the
event a script reads and the answer it may give (`GET /api/v1/protocol`).

Both schemas are generated from `addon.protocol`'s own definitions, the ones the proxy builds
events from (`ScriptEvent`) and judges answers with (`ScriptAnswer`), so they cannot drift from
what the proxy does. What a schema cannot say (it depends on the exchange, or JSON Schema has no
word for it) is listed in `rules`.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from addon.engine import BLOCK_EXIT_CODE
from addon.events import OUTCOMES
from addon.protocol import MAX_ANSWER_DEPTH, NO_CONTENT_STATUSES, PROTOCOL_VERSION, ScriptAnswer, ScriptEvent

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class PhaseInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    phase: str
    sync_eligible: bool = Field(
        description="a sync hook's answer here decides the exchange before it goes on"
    )
    async_eligible: bool = Field(description="an async (observe-only) hook runs here, beside the flow")
    when: str
    event_response: bool = Field(description="whether the event carries the upstream's response")
    answers: dict[str, str] = Field(description="what each key of the answer does in this phase")


class ProtocolDescription(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    phases: list[PhaseInfo]
    outcomes: list[str] = Field(description="what a run's event records as its outcome")
    exit_codes: dict[str, str]
    event_schema: dict[str, Any] = Field(description="JSON Schema (2020-12) of the event a script reads")
    answer_schema: dict[str, Any] = Field(
        description="JSON Schema (2020-12) of what a script may print (or an exec session's handle return)"
    )
    rules: list[str] = Field(description="rules the proxy also applies that the schemas cannot express")


PHASES = (
    PhaseInfo(
        phase="request",
        sync_eligible=True,
        async_eligible=True,
        when="before the request goes upstream; the first hook (in position order) that matches runs",
        event_response=False,
        answers={
            "request": "change the request (method, path, headers set/remove, body), then it goes upstream",
            "response": "answer the client with this response; the upstream is not contacted",
            "block": "answer 403 naming the hook and the reason",
            "intercept_response": "run the script again in the response phase when the upstream answers",
        },
    ),
    PhaseInfo(
        phase="response",
        sync_eligible=True,
        async_eligible=False,
        when="when the upstream's response arrives, after a request-phase answer that set intercept_response",
        event_response=True,
        answers={
            "response": "change the upstream's response (status, headers set, body)",
            "block": "answer 403 in the response's place",
            "request": "ignored: the request has been sent",
        },
    ),
)

RULES = (
    "Empty output, like null, means: carry on unchanged.",
    f"An answer nests at most {MAX_ANSWER_DEPTH} levels (the answer object being level 1).",
    "status is written as an integer: 200, not 200.0 (JSON Schema counts 200.0 as an integer).",
    "request phase: response.status is 200-599 (unset: 200); 1xx is never a whole answer.",
    "response phase: response.status is 200-599, or the upstream's own status (unset keeps it).",
    f"A final status of {' or '.join(map(str, sorted(NO_CONTENT_STATUSES)))} comes without a body, "
    "the answer's or the upstream's that stays.",
    "body_base64 wins over body when both are given; a JSON object or array body is sent as JSON "
    "(content-type application/json unless the answer sets one).",
)


def _schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, **adapter.json_schema()}


@functools.cache
def describe() -> ProtocolDescription:
    """The same for the life of the process: built once."""
    return ProtocolDescription(
        version=PROTOCOL_VERSION,
        phases=list(PHASES),
        outcomes=list(OUTCOMES),
        exit_codes={
            "0": "read the answer on stdout",
            str(BLOCK_EXIT_CODE): "block, with the reason on stderr",
            "other": "the run failed (the hook's failure_mode decides the flow)",
        },
        event_schema=_schema(TypeAdapter(ScriptEvent)),
        # Optional: `null` (and empty output) is a valid answer, "carry on".
        answer_schema=_schema(TypeAdapter(ScriptAnswer | None)),
        rules=list(RULES),
    )
