"""`GET /api/v1/protocol`: script protocol v1, machine-readable (see `addon.protocol_schema`)."""

from __future__ import annotations

from aiohttp import web

from addon.protocol_schema import describe
from control_api.envelope import ok

PROTOCOL = "/api/v1/protocol"


async def protocol(request: web.Request) -> web.Response:
    return ok("Protocol described", describe().model_dump(mode="json"))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PROTOCOL, protocol)
