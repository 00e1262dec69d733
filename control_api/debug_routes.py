"""Debugging endpoints: the containers served, and why a request would (not) run a hook."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from addon.dry_run import DryRunRequest, InlineScriptsDisabled, dry_run
from addon.edits import hookable_services
from addon.events import Event
from addon.explain import MatchQuery, explain
from addon.matching import CompiledContainer
from addon.validation import InvalidInput, parse_model
from control_api import schemas
from control_api.envelope import ApiError, ok
from control_api.hooks_routes import CONTAINER, find_hook, load_container, read_body
from control_api.keys import ALLOW_INLINE, CONTAINERS, ENCODED_SLASHES, EVENTS, EXECUTION
from control_api.operations import TAG_DEBUGGING, TAG_SERVER, Operation, Route

log = logging.getLogger(__name__)


async def list_containers(request: web.Request) -> web.Response:
    containers = []
    for name, store in request.app[CONTAINERS]:
        snapshot = await asyncio.to_thread(store.read)
        hooks = snapshot.hooks_file.hooks
        by_service = {
            service: len(hooks.get(service, [])) for service in hookable_services(snapshot.hooks_file)
        }
        containers.append(
            {
                "id": name,
                "file_version": snapshot.version,
                "etag": snapshot.etag,
                "services": len(snapshot.hooks_file.services),
                "hooks": sum(by_service.values()),
                "hooksByService": by_service,
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
    result = explain([CompiledContainer.compile(snapshot)], query, request.app[ENCODED_SLASHES])
    return ok("Match explained", result)


async def test_hook(request: web.Request) -> web.Response:
    """Dry-run one hook on a sample: changes nothing, recorded as a `dry_run` event."""
    _, snapshot = await load_container(request)
    service = request.match_info["service"]
    position, hook = find_hook(snapshot, service, request.match_info["hookId"])
    raw = await read_body(request)
    try:
        sample = parse_model(DryRunRequest, raw)
        result, run = await dry_run(
            snapshot,
            service,
            hook,
            position,
            sample,
            request.app[EXECUTION],
            request.app[ALLOW_INLINE],
            request.app[ENCODED_SLASHES],
        )
    except InvalidInput as exc:
        raise ApiError(422, "Invalid dry run", "VALIDATION_ERROR", exc.problems) from None
    except InlineScriptsDisabled as exc:
        raise ApiError(403, str(exc), "INLINE_SCRIPTS_DISABLED") from None
    events = request.app.get(EVENTS)
    if events is not None:
        event = Event.from_run(run, events.instance).model_copy(update={"kind": "dry_run"})
        if events.recording:
            events.add(event)
        else:
            try:
                await asyncio.to_thread(events.store.insert, [event])
            except events.store.errors as exc:  # the run happened; only its record is lost
                events.dropped += 1
                log.warning("proxy-hooks: cannot record the dry run in %s: %s", events.store.location, exc)
    return ok("Hook tested", result)


ROUTES = (
    Route("GET", "/api/v1/containers", list_containers, Operation(
        "listContainers", TAG_SERVER, "List the containers served",
        schemas.ContainerList, "Containers listed successfully", errors=(), container=False,
    )),
    Route("POST", CONTAINER + "/proxy/match", explain_match, Operation(
        "explainContainerProxyMatch", TAG_DEBUGGING,
        "Explain which hook a request would run, and why not the others",
        schemas.Explanation, "Match explained", body=MatchQuery, errors=(404, 422),
    )),
    Route("POST", CONTAINER + "/proxy/hooks/{service}/{hookId}/test", test_hook, Operation(
        "dryRunContainerProxyHook", TAG_DEBUGGING, "Dry-run a hook on a sample request",
        schemas.DryRunResult, "Hook tested", body=DryRunRequest, errors=(404, 422, 403, 413),
    )),
)  # fmt: skip
