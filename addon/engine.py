"""One hook run, from script to verdict: what the proxy should do, and the record of it.

No mitmproxy here: the addon hands in the event (protocol v1) and applies the `Verdict`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from addon.capture import Exchange
from addon.changes import RunChanges
from addon.environments import redact
from addon.matching import ClientView, CompiledHook
from addon.model import Capture
from addon.protocol import BadAnswer, Outcome, Phase, ScriptAnswer, parse_answer, parse_answer_object
from addon.scripts import RunResult, Runtimes, ScriptUnavailable, open_script, run_script, runtime_name
from addon.sessions import SessionKey, SessionPool, script_stamp, session_runtime
from addon.validation import resolve_script, script_inside

if TYPE_CHECKING:  # the aiohttp client; the engine itself imports no HTTP library
    from addon.remote_hooks import RemoteHooks

BLOCK_EXIT_CODE = 2
MAX_REASON = 500
MAX_STDERR_SHOWN = 4096


@dataclass(frozen=True)
class Execution:
    """How scripts run: interpreters by absolute path, the environment they get, and the
    exec-session workers (None: every hook runs one process per run)."""

    runtimes: Runtimes
    env: Mapping[str, str]
    sessions: SessionPool | None = None
    remote: RemoteHooks | None = None  # the HTTP client of remote hooks (None: they fail)


@dataclass(frozen=True)
class Verdict:
    """What a run decided. `answer` is set for continued/modified/responded/blocked."""

    outcome: Outcome
    answer: ScriptAnswer | None = None
    reason: str | None = None  # why it blocked, or why it failed
    result: RunResult | None = None  # None for a cached verdict: no script ran
    cached: bool = False  # reused from an earlier run (addon.verdict_cache)

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "timeout")


@dataclass
class HookRun:
    """The record of one run, for flow.metadata and the event recorder."""

    container: str
    service: str
    hook_id: str
    position: int
    phase: Phase
    mode: str
    script: str
    runtime: str
    method: str
    host: str
    path: str
    client: str
    groups: list[str]
    outcome: Outcome = "continued"
    reason: str | None = None
    status: int | None = None  # what the client got, when the proxy decided it
    exit_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    stderr: str | None = None  # what the script wrote there, trimmed: traces, diagnostics
    changes: RunChanges | None = None  # what the applied answer did (addon.changes)
    capture: Capture | None = None  # the hook keeps its exchanges (`capture`), redacting these headers
    exchange: Exchange | None = None  # the exchange captured, stored beside the run's event
    # The hook environment's from_env values, masked in what capture keeps; never recorded.
    secrets: frozenset[str] = frozenset()
    cached: bool = False  # the verdict of an earlier run, reused (the hook's `cache`)
    hook_name: str | None = None
    hook_version: int = 1  # the version of the hook that ran (addon.versions)
    ts: str = field(
        default_factory=lambda: (
            dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
    )

    @classmethod
    def begin(
        cls, container: str, service: str, hook: CompiledHook, phase: Phase, host: str, client: ClientView
    ) -> HookRun:
        """A run about to start: who, which hook and script, for which request."""
        facts = client.request
        return cls(
            container=container,
            service=service,
            hook_id=hook.id,
            position=hook.position,
            phase=phase,
            mode=hook.hook.mode,
            script=hook.hook.script.path,
            runtime="remote" if hook.remote_url is not None else runtime_name(hook.hook.script.path),
            method=facts.method,
            host=host,
            path=facts.path,
            client=facts.client_address,
            groups=sorted(client.groups),
            capture=hook.hook.capture_spec(),
            secrets=hook.environment.secrets,
            hook_name=hook.hook.name,
            hook_version=hook.hook.hook_version,
        )

    @property
    def blocked(self) -> bool:
        return self.outcome == "blocked"

    def settle(self, verdict: Verdict) -> None:
        self.outcome = verdict.outcome
        self.reason = verdict.reason if verdict.outcome == "blocked" else None
        self.error = verdict.reason if verdict.failed else None
        self.cached = verdict.cached
        if verdict.result is not None:
            self.exit_code = verdict.result.exit_code
            self.duration_ms = verdict.result.duration_ms
            self.stderr = _excerpt(verdict.result.stderr_text, MAX_STDERR_SHOWN) or None

    def as_dict(self) -> dict[str, Any]:
        """For flow.metadata: plain JSON values only (flows can be saved; the capture stays with
        the event)."""
        plain = {k: v for k, v in self.__dict__.items() if k not in ("capture", "exchange", "secrets")}
        changes = None if self.changes is None else self.changes.model_dump(mode="json")
        return {**plain, "blocked": self.blocked, "changes": changes}


FileIdentity = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


def session_script(
    scripts_root: Path, script_path: str, checked: dict[str, FileIdentity] | None = None
) -> tuple[Path, os.stat_result] | Verdict:
    """An exec-session script's path and stat (its stamp tells the worker when to reload it),
    or the failed verdict: outside the scripts folder, or not a regular file.

    Where the path leads (two realpath walks) is looked at again only when the file it opens
    is not one already found inside (`checked`: by script path, the identity it had): a file
    swapped for another, or for a symlink to one outside, is another file. Either way the
    worker opens and checks the file itself, beneath the folder, whenever it (re)loads it,
    which a changed file makes it do."""
    script = resolve_script(scripts_root, script_path)
    try:
        info: os.stat_result | None = os.stat(script)
    except OSError:
        info = None
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) if info is not None else None
    if identity is None or checked is None or checked.get(script_path) != identity:
        if not script_inside(scripts_root, script_path):
            return Verdict("failed", reason=f"script {script_path} resolves outside the scripts folder")
        if info is None or identity is None or not stat.S_ISREG(info.st_mode):
            return Verdict(
                "failed", reason=f"script not found: {script_path} (looked in {scripts_root.name}/)"
            )
        if checked is not None:
            checked[script_path] = identity
    assert info is not None
    return script, info


def _excerpt(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def judge(result: RunResult, phase: Phase, timeout_ms: int) -> Verdict:
    """Protocol v1: exit 2 blocks, other non-zero exits, bad output and timeouts fail."""
    if result.timed_out:
        what = "hook service" if result.remote else "script"
        return Verdict("timeout", reason=f"{what} timed out after {timeout_ms} ms", result=result)
    if result.error:
        return Verdict("failed", reason=result.error, result=result)
    if result.session:
        try:
            answer = parse_answer_object(result.answer)
        except BadAnswer as exc:
            return Verdict("failed", reason=f"bad answer from handle: {exc}", result=result)
        return _verdict_of(answer, phase, result)
    if result.exit_code == BLOCK_EXIT_CODE:
        reason = _excerpt(result.stderr_text) or "blocked by hook script (exit code 2)"
        return Verdict("blocked", ScriptAnswer(block=True, reason=reason), reason, result)
    if result.exit_code != 0:
        detail = f": {_excerpt(result.stderr_text)}" if result.stderr_text else ""
        return Verdict("failed", reason=f"script exited with code {result.exit_code}{detail}", result=result)
    try:
        answer = parse_answer(result.stdout)
    except BadAnswer as exc:
        what = "bad answer from the hook service" if result.remote else "bad script output"
        return Verdict("failed", reason=f"{what}: {exc}", result=result)
    return _verdict_of(answer, phase, result)


def _verdict_of(answer: ScriptAnswer, phase: Phase, result: RunResult) -> Verdict:
    if answer.block:
        return Verdict("blocked", answer, answer.reason or "blocked by hook script", result)
    if phase == "request" and answer.response is not None:
        return Verdict("responded", answer, result=result)
    if answer.response is not None or (phase == "request" and answer.request is not None):
        return Verdict("modified", answer, result=result)
    return Verdict("continued", answer, result=result)


async def run_hook(
    hook: CompiledHook,
    event: Mapping[str, Any],
    scripts_root: Path,
    execution: Execution,
    checked: dict[str, FileIdentity] | None = None,
) -> Verdict:
    """Run the hook's script on `event` with its environment's variables; what the run says
    back (stderr, reasons) has that environment's secret values masked. A remote hook is a POST
    to its hook service instead (no environment: its variables stay in the proxy). `checked`: see
    `session_script`."""
    if hook.remote_url is not None:
        return await _run_remote(hook, hook.remote_url, event, execution)
    environment = hook.environment
    if environment.problem is not None:
        return Verdict("failed", reason=environment.problem)
    verdict = await _run_script_of(hook, event, scripts_root, execution, environment.variables, checked)
    return _redacted(verdict, environment.secrets) if environment.secrets else verdict


async def _run_remote(
    hook: CompiledHook, url: str, event: Mapping[str, Any], execution: Execution
) -> Verdict:
    if execution.remote is None:
        return Verdict("failed", reason=f"remote hooks are not available here (would call {url})")
    result = await execution.remote.call(url, event, hook.hook.script.execId, hook.hook.timeout / 1000)
    return judge(result, event["phase"], hook.hook.timeout)


def _redacted(verdict: Verdict, secrets: frozenset[str]) -> Verdict:
    """The verdict with secret values masked wherever its text could be recorded or shown."""
    result = verdict.result
    if result is not None:
        stderr = redact(result.stderr.decode("utf-8", "replace"), secrets) or ""
        result = dataclasses.replace(result, stderr=stderr.encode())
    answer = verdict.answer
    if answer is not None and answer.reason:
        answer = answer.model_copy(update={"reason": redact(answer.reason, secrets)})
    return dataclasses.replace(verdict, answer=answer, reason=redact(verdict.reason, secrets), result=result)


async def _run_script_of(
    hook: CompiledHook,
    event: Mapping[str, Any],
    scripts_root: Path,
    execution: Execution,
    variables: Mapping[str, str],
    checked: dict[str, FileIdentity] | None,
) -> Verdict:
    """`checked`: exec-session scripts found inside the scripts folder already (one dict per
    snapshot of the hooks file: see `session_script`)."""
    script_path = hook.hook.script.path
    timeout_s = hook.hook.timeout / 1000
    session = session_runtime(script_path) if hook.hook.script.execId else None
    if session is not None and execution.sessions is not None:
        assert hook.hook.script.execId is not None
        found = session_script(scripts_root, script_path, checked)
        if isinstance(found, Verdict):
            return found
        script, info = found
        key = SessionKey(
            str(event["container"]),
            hook.hook.script.execId,
            session,
            hook.hook.environment or "",
            hook.environment.digest,
        )
        result = await execution.sessions.run(
            key, script, script_stamp(info), event, timeout_s, scripts_root, variables
        )
        return judge(result, event["phase"], hook.hook.timeout)
    if execution.sessions is not None:  # opened and started there; the event encoded once, there
        result = await execution.sessions.spawn(script_path, event, timeout_s, scripts_root, variables)
        return judge(result, event["phase"], hook.hook.timeout)
    try:
        opened = open_script(scripts_root, script_path)
    except ScriptUnavailable as exc:
        return Verdict("failed", reason=str(exc))
    try:
        command = execution.runtimes.script_command(opened.real)
        stdin = json.dumps(event).encode()
        env = {**execution.env, **variables} if variables else execution.env
        result = await run_script(command, stdin, timeout_s, scripts_root, env, opened, opened.real)
    except FileNotFoundError as exc:
        return Verdict("failed", reason=str(exc))
    finally:
        os.close(opened.fd)
    return judge(result, event["phase"], hook.hook.timeout)
