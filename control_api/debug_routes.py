"""Debugging endpoints: the containers served, and why a request would (not) run a hook."""

from __future__ import annotations

import asyncio

from aiohttp import web

from addon.explain import MatchQuery, explain
from addon.matching import CompiledContainer
from addon.validation import InvalidInput, parse_model
from control_api.envelope import ApiError, ok
from control_api.hooks_routes import load_container, read_body
from control_api.keys import CONTAINERS


async def list_containers(request: web.Request) -> web.Response:
    containers = []
    for name, store in request.app[CONTAINERS]:
        snapshot = await asyncio.to_thread(store.read)
        hooks = snapshot.hooks_file.hooks
        containers.append(
            {
                "id": name,
                "file_version": snapshot.version,
                "etag": snapshot.etag,
                "services": len(snapshot.hooks_file.services),
                "hooks": sum(len(hooks.get(service, [])) for service in snapshot.hooks_file.services),
                "hooksByService": {
                    service: len(hooks.get(service, [])) for service in snapshot.hooks_file.services
                },
                "error": None if store.error is None else [str(p) for p in store.error.problems],
            }
        )
    return ok("Containers listed successfully", {"containers": containers})


async def explain_match(request: web.Request) -> web.Response:
    _, snapshot = await load_container(request)
    raw = await read_body(request)
    try:
        query = parse_model(MatchQuery, raw)
    except InvalidInput as exc:
        raise ApiError(422, "Invalid match request", "VALIDATION_ERROR", exc.problems) from None
    result = explain([CompiledContainer.compile(snapshot)], query)
    return ok("Match explained", result)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/containers", list_containers)
    app.router.add_post("/api/v1/containers/{id}/proxy/match", explain_match)
