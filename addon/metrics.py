"""Prometheus metrics of the flow path: what the proxy saw and what its hooks did.

Counted where the proxy records anyway — a flow's service once matched, a run when it is
recorded — so a flow pays one or two label look-ups and increments (prometheus_client keeps each
label set's child in a dict; no I/O, no allocation after the first time). Labels are bounded:
container, service and hook ids come from the hooks files, outcome and runtime from fixed sets;
nothing per path, host or client.

A registry of our own rather than prometheus_client's global one: the control API serves it
beside the metrics it gathers at scrape time (control_api.metrics), and nothing else a process
imports can add to it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from addon.engine import HookRun

REGISTRY = CollectorRegistry(auto_describe=True)

FLOWS = Counter(
    "proxy_hooks_flows",
    "HTTP flows for a service (destination, Host or SNI named it), by whether one of its hooks matched",
    ["container", "service", "hooked"],
    registry=REGISTRY,
)
RUNS = Counter(
    "proxy_hooks_runs",
    "Hook runs (each phase of a run is one), by outcome",
    ["container", "service", "hook", "outcome"],
    registry=REGISTRY,
)
CACHE_HITS = Counter(
    "proxy_hooks_cache_hits",
    "Runs answered with an earlier verdict from the hook's cache (also counted in proxy_hooks_runs)",
    ["container", "service", "hook"],
    registry=REGISTRY,
)
# From a cached exec-session answer (~0.3 ms) to a script at its 30 s timeout.
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
RUN_SECONDS = Histogram(
    "proxy_hooks_run_duration_seconds",
    "How long hook scripts took, by runtime (python, node, typescript, bash, exec)",
    ["runtime"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
CONFIG_REJECTED = Counter(
    "proxy_hooks_config_rejected",
    "Edits of a hooks file on disk that were refused as invalid (the last good version stays enforced)",
    ["container"],
    registry=REGISTRY,
)


# Each label set's child, found once: `labels()` checks and converts its values and takes a
# lock on every call (~2 µs), the child's own `inc()` a quarter of that. Bounded as the labels
# are; prometheus_client keeps every child anyway.
_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def flow_seen(container: str, service: str, hooked: bool) -> None:
    _child(FLOWS, container, service, "true" if hooked else "false").inc()


def run_recorded(run: HookRun) -> None:
    _child(RUNS, run.container, run.service, run.hook_id, run.outcome).inc()
    if run.cached:
        _child(CACHE_HITS, run.container, run.service, run.hook_id).inc()
    if run.duration_ms is not None:
        _child(RUN_SECONDS, run.runtime).observe(run.duration_ms / 1000)


def config_changed(container: str, kind: str) -> None:
    if kind != "reload":
        CONFIG_REJECTED.labels(container).inc()
