"""Dry-run one hook on a sample request: the script runs exactly as live traffic would run it
(same runtime, protocol, timeout, failure mode); nothing else changes.

The sample becomes real mitmproxy `Request`/`Response` objects, so the event the script reads
and the way its answer is applied are the live path's own functions.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from mitmproxy import http
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from addon.admission import Refused, canonical_path, path_forms
from addon.engine import Execution, HookRun, run_hook
from addon.environments import resolve_all
from addon.explain import ClientSample
from addon.flows import apply_verdict, hook_event
from addon.matching import ClientView, CompiledContainer, CompiledHook, RequestFacts
from addon.model import METHODS, HeaderMap, Hook, Name, ScriptPath
from addon.paths import EncodedSlashes
from addon.protocol import Phase, body_fields
from addon.store import Snapshot
from addon.validation import InvalidInput, Problem, environment_undefined, script_inside, service_upstreams

MAX_INLINE_SOURCE = 256 * 1024
_EXTENSIONS = {"python": ".py", "node": ".js", "typescript": ".ts", "bash": ".sh"}


class _Sample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleResponse(_Sample):
    status: Annotated[int, Field(ge=100, le=599, strict=True)] = 200
    headers: HeaderMap = Field(default_factory=dict)
    body: str | None = None


class InlineScript(_Sample):
    language: Literal["python", "node", "typescript", "bash"]
    source: Annotated[str, Field(max_length=MAX_INLINE_SOURCE)]


def _method(value: str) -> str:
    if value.upper() not in METHODS:
        raise ValueError(f"must be one of {', '.join(METHODS)}, got {value!r}")
    return value.upper()


class DryRunRequest(_Sample):
    """POST …/hooks/{service}/{hookId}/test: a sample request (and, for the response phase, a
    sample response), optionally another script to run in the hook's place."""

    method: Annotated[str, AfterValidator(_method)] = "GET"
    path: Annotated[str, Field(pattern=r"^/", max_length=8192)] = "/"
    host: str | None = None
    headers: HeaderMap = Field(default_factory=dict)
    body: str | None = None
    client: ClientSample = Field(default_factory=ClientSample)
    response: SampleResponse | None = None
    script_override: ScriptPath | None = None
    script_inline: InlineScript | None = None
    # Run with another of the file's environments than the hook's own (seed 001's environment_id).
    environment: Name | None = None

    @model_validator(mode="after")
    def _one_script(self) -> DryRunRequest:
        if self.script_override is not None and self.script_inline is not None:
            raise ValueError("give script_override or script_inline, not both")
        return self


class InlineScriptsDisabled(PermissionError):
    pass


@dataclass
class _Exchange:
    request: http.Request
    response: http.Response | None


def _headers(headers: dict[str, str]) -> http.Headers:
    return http.Headers([(k.encode(), v.encode()) for k, v in headers.items()])


def _message(message: http.Message, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "headers": [[k, v] for k, v in message.headers.items(multi=True)],
        **body_fields(message.get_content(strict=False)),
    }


async def dry_run(
    snapshot: Snapshot,
    service: str,
    hook: Hook,
    position: int,
    sample: DryRunRequest,
    execution: Execution,
    allow_inline: bool,
    encoded_slashes: EncodedSlashes = "reject",
) -> tuple[dict[str, Any], HookRun]:
    """Run the hook's (or the override's) script on the sample. Returns the answer for the API
    and the run, for the events store (as a dry run)."""
    if sample.script_inline is not None and not allow_inline:
        raise InlineScriptsDisabled(
            "inline scripts are disabled; the operator can set hooks_allow_inline_scripts"
        )
    if sample.environment is not None:
        undefined = environment_undefined(sample.environment, snapshot.hooks_file.environments)
        if undefined is not None:
            raise InvalidInput([undefined])
        hook = hook.model_copy(update={"environment": sample.environment})
    host = sample.host or next(iter(snapshot.hooks_file.services[service].hosts), "localhost")
    try:
        path = canonical_path(sample.path, encoded_slashes)
    except Refused as refused:
        raise InvalidInput(
            [
                Problem(
                    "path",
                    f"the proxy would refuse this path with {refused.status}: {refused.body['reason']}",
                )
            ]
        ) from None
    try:
        request = http.Request.make(
            sample.method,
            f"http://{host}{path.forward}",
            (sample.body or "").encode(),
            _headers(sample.headers),
        )
    except ValueError as exc:
        raise InvalidInput([Problem("host", f"not a usable host: {exc}")]) from None
    response = None
    if sample.response is not None:
        response = http.Response.make(
            sample.response.status, (sample.response.body or "").encode(), _headers(sample.response.headers)
        )
    exchange = _Exchange(request, response)
    container = CompiledContainer.compile(snapshot)
    facts = RequestFacts.of(
        sample.method,
        path.canonical + "?" + path.forward.partition("?")[2],
        sample.headers,
        sample.client.address,
        sample.client.user,
    )
    client = ClientView(facts, container.groups)
    with tempfile.TemporaryDirectory(prefix="proxy-hooks-inline-") as scratch:
        scripts_root, script_hook = _script_for(snapshot, hook, sample, Path(scratch))
        compiled = CompiledHook.compile(
            script_hook, position, resolve_all(snapshot.hooks_file), service_upstreams(snapshot.hooks_file)
        )
        phase: Phase = "response" if response is not None else "request"
        run = HookRun.begin(snapshot.container, service, compiled, phase, host, client)
        event = hook_event(exchange, run, compiled, snapshot.container, service, facts.user)
        verdict = await run_hook(compiled, event, scripts_root, execution)
    run.settle(verdict)
    intercept = apply_verdict(exchange, run, verdict, hook.failure_mode)
    final = exchange.response
    if final is not None:
        run.status = final.status_code
    contacts_upstream = run.phase == "request" and final is None
    return {
        "success": not verdict.failed,
        "outcome": run.outcome,
        "phase": run.phase,
        "blocked": run.blocked,
        "reason": run.reason,
        "error": run.error,
        "exit_code": run.exit_code,
        "stderr": run.stderr,
        "execution_time_ms": run.duration_ms,
        "script": run.script,
        "runtime": run.runtime,
        "remote_url": compiled.remote_url,
        "failure_mode": hook.failure_mode,
        "would_contact_upstream": contacts_upstream,
        "path": path_forms(path),
        "intercept_response": intercept,
        "request": _message(
            exchange.request, method=exchange.request.method, url=exchange.request.pretty_url
        ),
        "response": None if final is None else _message(final, status=final.status_code),
    }, run


def _script_for(snapshot: Snapshot, hook: Hook, sample: DryRunRequest, scratch: Path) -> tuple[Path, Hook]:
    """The scripts folder and hook to run: the hook itself, its override, or inline source."""
    if sample.script_inline is not None:
        name = "inline" + _EXTENSIONS[sample.script_inline.language]
        (scratch / name).write_text(sample.script_inline.source)
        # Reachable by a hooks_script_user (the folder is its cwd; bash reads the file through
        # /proc/self/fd), not listable by anyone else.
        scratch.chmod(0o711)
        (scratch / name).chmod(0o644)
        return scratch, hook.model_copy(
            update={"script": hook.script.model_copy(update={"path": f"/{name}"})}
        )
    if sample.script_override is not None:
        if not script_inside(snapshot.scripts_root, sample.script_override):
            raise InvalidInput(
                [Problem("script_override", "resolves outside the scripts folder (a symlink?)")]
            )
        script = hook.script.model_copy(update={"path": sample.script_override})
        return snapshot.scripts_root, hook.model_copy(update={"script": script})
    return snapshot.scripts_root, hook
