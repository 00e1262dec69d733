"""GET /metrics: Prometheus' text exposition, behind the bearer token like every API route.

Three sources, one answer: the flow path's counters (`addon.metrics`, counted as flows go), this
API's own requests (counted by `count_requests`, the outermost middleware, so the door's and the
envelope's answers are counted with their final status), and the state read at scrape time — each
container's file version, the exec-session workers, the events recorder — which already lives in
the objects /healthz reads and costs nothing between scrapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from addon import metrics as flow_metrics
from control_api.keys import CONTAINERS, EVENTS, LIVE_SESSIONS
from control_api.operations import TAG_SERVER, Operation, Route

API_REQUESTS: web.AppKey[Counter] = web.AppKey("api_requests")
API_REGISTRY = web.AppKey("api_registry", CollectorRegistry)
# The classic text format: every name here is a legacy-valid one, and every Prometheus 2.x and
# 3.x reads it (newer clients default to version=1.0.0, which older servers may not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"  # a path no route serves: one label value, whatever the path was


def install(app: web.Application) -> None:
    """This API's request counter, in a registry of its own (one per app)."""
    registry = CollectorRegistry(auto_describe=True)
    app[API_REGISTRY] = registry
    app[API_REQUESTS] = Counter(
        "proxy_hooks_api_requests",
        "Control API requests by method, route pattern (not the path) and status",
        ["method", "route", "status"],
        registry=registry,
    )


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects, which the envelope lets through
        status = exc.status
        raise
    finally:
        counter = request.app.get(API_REQUESTS)
        if counter is not None:
            counter.labels(request.method, _route(request), str(status)).inc()


class _Families(Collector):
    """Metric families gathered on the event loop, handed to prometheus_client to render."""

    def __init__(self, families: Iterable[Metric]):
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def _state(app: web.Application) -> list[Metric]:
    version = GaugeMetricFamily(
        "proxy_hooks_config_version", "The hooks file version each container enforces", labels=["container"]
    )
    valid = GaugeMetricFamily(
        "proxy_hooks_config_valid",
        "1 while the hooks file on disk is valid; 0 while a bad edit waits to be fixed",
        labels=["container"],
    )
    for name, store in app[CONTAINERS]:
        snapshot = await asyncio.to_thread(store.read)
        version.add_metric([name], snapshot.version)
        valid.add_metric([name], 1 if store.error is None else 0)
    families: list[Metric] = [version, valid]
    sessions = app.get(LIVE_SESSIONS)
    if sessions is not None:
        workers = GaugeMetricFamily(
            "proxy_hooks_exec_workers",
            "Exec-session workers by runtime and state",
            labels=["runtime", "state"],
        )
        restarts = CounterMetricFamily(
            "proxy_hooks_exec_worker_restarts",
            "Exec-session workers restarted after a crash or a kill",
            labels=["container", "exec_id", "runtime"],
        )
        by_state: dict[tuple[str, str], int] = {}
        for row in sessions.status():
            key = (str(row["runtime"]), str(row["state"]))
            by_state[key] = by_state.get(key, 0) + 1
            restarts.add_metric(
                [str(row["container"]), str(row["exec_id"]), str(row["runtime"])], row["restarts"]
            )
        for (runtime, state), count in sorted(by_state.items()):
            workers.add_metric([runtime, state], count)
        families += [workers, restarts]
    events = app.get(EVENTS)
    if events is not None:
        written = CounterMetricFamily("proxy_hooks_events_written", "Events written to the store")
        written.add_metric([], events.written)
        dropped = CounterMetricFamily(
            "proxy_hooks_events_dropped", "Events lost: queue full or store unusable (never waited for)"
        )
        dropped.add_metric([], events.dropped)
        families += [written, dropped]
    return families


async def metrics(request: web.Request) -> web.Response:
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Families(await _state(request.app)))
    body = b"".join(
        generate_latest(registry) for registry in (flow_metrics.REGISTRY, request.app[API_REGISTRY], scraped)
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


ROUTES = (
    Route("GET", "/metrics", metrics, Operation(
        "getMetrics", TAG_SERVER, "Prometheus metrics (text exposition format)",
        None, "", errors=(), container=False, media=("text/plain",),
    )),
)  # fmt: skip
