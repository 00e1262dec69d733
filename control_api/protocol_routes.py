"""`GET /api/v1/protocol`: script protocol v1, machine-readable (see `addon.protocol_schema`)."""

from __future__ import annotations

from aiohttp import web

from addon.protocol_schema import ProtocolDescription, describe
from control_api.envelope import ok
from control_api.operations import TAG_PROTOCOL, Operation, Route

PROTOCOL = "/api/v1/protocol"


async def protocol(request: web.Request) -> web.Response:
    return ok("Protocol described", describe().model_dump(mode="json"))


ROUTES = (
    Route("GET", PROTOCOL, protocol, Operation(
        "getProxyProtocol", TAG_PROTOCOL,
        "Script protocol v1: its phases, and the JSON Schemas of the event and of the answer",
        ProtocolDescription, "Protocol described", errors=(), container=False,
    )),
)  # fmt: skip
