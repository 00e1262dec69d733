"""What the API answers, as pydantic models: the `data` of each success envelope and the error
body. They exist for the OpenAPI document (the handlers build plain dicts from the domain
models these reuse), so the document comes from the same classes as the hooks file."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from addon.capture import Exchange
from addon.events import Event
from addon.model import Environment, Group, HookSpec, Service, Timestamp


class Detail(BaseModel):
    field: str = Field(description="the field path, e.g. hooks.auth[2].timeout")
    reason: str = Field(description="what is wrong and how to fix it")


class ErrorBody(BaseModel):
    statusCode: int
    error: str = Field(description="the status's title, e.g. Not Found, Validation Error")
    message: str = Field(description="e.g. Resource not found, etag_mismatch, Invalid hook")
    code: str | None = Field(
        None, description="NOT_FOUND, VALIDATION_ERROR, PRECONDITION_REQUIRED, PRECONDITION_FAILED, …"
    )
    details: list[Detail] | None = Field(None, description="for 422: every problem found")
    data: UpsertOutcome | None = Field(
        None, description="bulk upsert refused: what became of each item (nothing was written)"
    )


class HookView(HookSpec):
    """A hook as the API shows it: its id and position first, then what is stored."""

    id: str
    position: int
    version: int = Field(
        description="1 when written, +1 whenever the hook's content changes (moves do not count)"
    )
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class Versioned(BaseModel):
    file_version: int
    etag: str = Field(description="file:v<N>, also sent as the ETag header")


class ContainerHooks(Versioned):
    hooks: dict[str, list[HookView]] = Field(description="by service; services without hooks as []")


class ContainerDocument(Versioned):
    """The whole container as its hooks file holds it, so it can be written back as one (what
    `proxy-hooks export` does). `from_env` variables are the references the file holds,
    `{"from_env": "NAME"}`: the value read from the proxy's environment is never shown."""

    container: str
    scripts_dir: str = Field(description="where script paths resolve, relative to the hooks file")
    services: dict[str, Service]
    groups: dict[str, Group]
    environments: dict[str, Environment] = Field(
        description='variables by environment: literals, and {"from_env": NAME} references as written'
    )
    hooks: dict[str, list[HookView]] = Field(description="by service, as the file lists them")


class ServiceHooks(Versioned):
    service: str
    hooks: list[HookView]


class OneHook(Versioned):
    hook: HookView


class ServiceChanges(BaseModel):
    added: list[str] = Field(description="ids of hooks new to the service")
    updated: list[str] = Field(description="ids kept whose content changed (their version went up)")
    removed: list[str] = Field(description="ids no longer in the service")
    unchanged: list[str] = Field(description="ids kept with the same content, moved or not")


class Applied(Versioned):
    services: dict[str, ServiceChanges] = Field(description="each service the write touched")
    hooks: dict[str, list[HookView]] = Field(description="those services' hooks as written")


class UpsertResult(BaseModel):
    index: int
    service: str | None
    action: str = Field(description="created, updated, unchanged; refused batch: failed or skipped")
    hook_id: str | None
    error: str | None


class UpsertOutcome(BaseModel):
    success: int
    failed: int
    results: list[UpsertResult]


class Upserted(Versioned, UpsertOutcome):
    pass


class Cleared(Versioned):
    removed: int


class EventsPage(BaseModel):
    events: list[Event]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: no more")


class HookRuns(BaseModel):
    service: str
    hookId: str
    runs: list[Event]


class Breakdown(BaseModel):
    total: int
    blocked: int
    avgDurationMs: float


class ServiceBreakdown(Breakdown):
    service: str | None


class HookBreakdown(Breakdown):
    hookId: str | None
    service: str | None
    cached: int = Field(description="runs whose verdict came from the hook's cache (no script ran)")
    cacheHitRate: float = Field(description="cached runs per 100 runs of the hook, 0-100")


class Day(BaseModel):
    date: str
    total: int
    blocked: int
    allowed: int
    avgDurationMs: float


class RecentClient(BaseModel):
    address: str
    lastSeen: str = Field(description="when its latest run started (UTC)")
    runs: int = Field(description="its runs in the period")
class CapturedExchange(BaseModel):
    event: Event
    exchange: Exchange


class Index(BaseModel):
    links: dict[str, str] = Field(description="the dashboard, the OpenAPI document, health, containers")


class TimelineBucket(BaseModel):
    start: str = Field(description="ISO 8601 UTC start of the hour (24h) or day (7d, 30d)")
    total: int
    byOutcome: dict[str, int]


class Stats(BaseModel):
    period: str
    totalEvents: int
    blockedEvents: int
    blockRate: float = Field(description="0-100")
    avgDurationMs: float
    p95DurationMs: float
    eventsByOutcome: dict[str, int]
    serviceBreakdown: list[ServiceBreakdown]
    hookBreakdown: list[HookBreakdown]
    dailyActivity: list[Day]
    eventsByKind: dict[str, int] = Field(description="every kind of event in the period, runs included")
    notes: int = Field(description="notes posted in the period (never counted in the run figures)")
    recentClients: list[RecentClient] = Field(
        description="the last client addresses that triggered runs in the period, latest first (at most 10)"
    )
    timeline: list[TimelineBucket] = Field(description="runs per bucket and outcome, every bucket listed")
    dropped: int


class SessionInfo(BaseModel):
    exec_id: str
    runtime: str | None = Field(description="python or node; None: this runtime runs one process per run")
    problem: str | None = Field(description="why the script cannot serve the session (e.g. no handle)")
    note: str | None


class EnvironmentInfo(BaseModel):
    name: str
    variables: dict[str, str] = Field(description="values; \"***\" for those read with from_env")
    problem: str | None = Field(description="why its runs fail: an undefined environment, an unset from_env")


class CatalogEntry(BaseModel):
    id: str | None
    name: str | None
    version: int
    position: int
    enabled: bool
    mode: str
    failure_mode: str
    timeout: int
    match: dict[str, Any]
    applies_to: dict[str, Any] | None
    script: dict[str, Any]
    file: str
    runtime: str = Field(description="python, node, typescript, bash, exec or remote")
    exists: bool
    session: SessionInfo | None = Field(description="set when the hook has script.execId")
    remote_url: str | None = Field(description="a remote hook (script.subdomain): the URL it calls")
    environment: EnvironmentInfo = Field(description="the variables its script gets (environments)")
    problem: str | None


class Catalog(Versioned):
    services: dict[str, list[CatalogEntry]]


class ContainerSummary(BaseModel):
    id: str
    file_version: int
    etag: str
    services: int
    hooks: int
    hooksByService: dict[str, int]
    error: list[str] | None


class ContainerList(BaseModel):
    containers: list[ContainerSummary]


class HealthContainer(BaseModel):
    id: str
    file: str
    file_version: int
    etag: str
    error: list[str] | None


class SessionWorker(BaseModel):
    container: str
    exec_id: str
    runtime: str
    environment: str | None = Field(description="the hooks' environment it was started with; None: default")
    pid: int | None
    state: str = Field(description="starting, ready, stopping, stopped")
    runs: int
    in_flight: int
    started_at: str | None
    restarts: int
    last_failure: str | None = Field(description="why its last worker was killed or crashed")


class SessionProblem(BaseModel):
    container: str
    service: str
    hook: str | None
    exec_id: str
    script: str
    problem: str


class ExecSessions(BaseModel):
    workers: list[SessionWorker]
    problems: list[SessionProblem]


class Health(BaseModel):
    status: str = Field(
        description="ok; degraded while a hooks file is invalid, an enabled hook's script is missing, "
        "an exec-session script cannot load, or events cannot be recorded"
    )
    reasons: list[str] = Field(description="why degraded, one sentence each; empty when ok")
    containers: list[HealthContainer]
    exec_sessions: ExecSessions
    events: dict[str, Any] | None = None


class ExplainedHook(BaseModel):
    id: str
    name: str | None
    version: int
    position: int
    matched: bool
    reached: bool = Field(description="false: an earlier hook won")
    reasons: list[str]


class PathForms(BaseModel):
    as_sent: str
    canonical: str = Field(description="decoded, dot segments and repeated slashes gone: what hooks match")
    forwarded: str = Field(description="what the upstream receives (normalized; query as sent)")


class Refusal(BaseModel):
    status: int = Field(description="400 (Host or path cannot be read one way only) or 421 (two services)")
    error: str
    reason: str
    services: dict[str, str] | None = None


class Explanation(BaseModel):
    container: str | None
    service: str | None
    reason: str | None = Field(description="why no service, when none")
    refused: Refusal | None = Field(description="the proxy answers this itself, before any hook")
    path: PathForms | None
    upstream: str | None
    client: dict[str, Any]
    hooks: list[ExplainedHook]
    winner: dict[str, Any] | None


class DryRunResult(BaseModel):
    success: bool
    outcome: str
    phase: str
    blocked: bool
    reason: str | None
    error: str | None
    exit_code: int | None
    stderr: str | None
    execution_time_ms: float | None
    script: str
    runtime: str
    remote_url: str | None = Field(description="a remote hook: the URL the event was POSTed to")
    failure_mode: str
    would_contact_upstream: bool
    path: PathForms
    intercept_response: bool
    request: dict[str, Any]
    response: dict[str, Any] | None
