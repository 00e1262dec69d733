"""The mitmproxy addon: finds each live flow's service, runs the first matching hook, applies
its answer. Also hosts the control API and the hooks-file watcher on mitmproxy's loop.

State that flows read is immutable: one `CompiledContainer` per file version, rebuilt when the
store's snapshot changes (an API write is live for the very next flow; a hand edit as soon as
the watcher has re-read the file).
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import dataclasses
import datetime as dt
import errno
import functools
import logging
import os
import pwd
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from aiohttp import web
from mitmproxy import ctx, exceptions, http, tcp
from mitmproxy.proxy import commands, events, layer

from addon import metrics
from addon.admission import Refused, admit, check_headers
from addon.capture import DEFAULT_BODY_MAX
from addon.catalog import deployment_problems
from addon.changes import RunChanges
from addon.containers import ConfigError, Containers
from addon.dispatch import pass_over_other_hooks
from addon.engine import Execution, HookRun, Verdict, run_hook
from addon.event_location import default_events_path
from addon.event_recorder import (
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_MAX_ROWS,
    DEFAULT_QUEUE,
    EventRecorder,
)
from addon.event_stores import EventStore, open_event_store
from addon.flow_capture import exchange_of
from addon.flows import (
    HOOK_HEADER,
    METADATA_KEY,
    apply_verdict,
    failure_response,
    flow_names,
    hook_event,
    json_response,
    no_body_after_head,
    request_facts,
)
from addon.hosts.containment import kill_other_sessions
from addon.matching import (
    ClientView,
    CompiledContainer,
    CompiledHook,
    CompiledService,
    FlowNames,
    Misdirected,
    host_names,
    resolve_service,
)
from addon.paths import ENCODED_SLASH_MODES, EncodedSlashes
from addon.protocol import DEFAULT_EVENT_BODY_MAX, Phase, ScriptEvent
from addon.recorder import LogRecorder, Recorder, log_every_run
from addon.remote_hooks import RemoteHooks
from addon.scripts import Runtimes, become_subreaper, minimal_env
from addon.sessions import DEFAULT_IDLE_S, SessionPool
from addon.store import is_database_url
from addon.validation import FileRefs, problem_lines
from addon.verdict_cache import CacheRequest, VerdictCache
from addon.watcher import watch_hooks
from control_api.app import ApiSettings
from control_api.hosts import parse_hosts
from control_api.server import (
    ListenError,
    bind,
    check_listen,
    parse_listen,
    resolve_token,
    serve_socket,
    url_of,
)

log = logging.getLogger("proxy_hooks")

DEFAULT_API = "127.0.0.1:8082"
SERVICE_KEY = "proxy_hooks_service"  # flow.metadata: the container/service a flow was judged for
# hooks_script_user: the API's dry runs have their own workers, started as that user too.
API_OPTIONS = {
    "hooks_config",
    "hooks_api",
    "hooks_api_token",
    "hooks_allow_inline_scripts",
    "hooks_api_hosts",
    "hooks_script_user",
    "hooks_encoded_slashes",  # the API's explain and dry runs read paths as the proxy does
    "hooks_tsx",  # its dry runs run TypeScript as the proxy does
}
EVENT_OPTIONS = {
    "hooks_events",
    "hooks_events_max_rows",
    "hooks_events_max_age_days",
    "hooks_events_queue",
    "hooks_instance",
}


@dataclass
class _Match:
    container: CompiledContainer
    service: CompiledService
    hook: CompiledHook | None
    client: ClientView


@dataclass
class _Pending:
    """A request-phase run waiting for the response: to record what the client got, and to run
    the hook again when the script asked for `intercept_response`."""

    run: HookRun
    match: _Match
    intercept: bool


class ProxyHooks:
    def __init__(self) -> None:
        self.containers: Containers | None = None
        self.config_error: str | None = None
        self.recorder: Recorder = LogRecorder()
        self.events: EventRecorder | None = None
        runtimes, env = Runtimes.detect(), minimal_env()
        self.sessions = SessionPool(runtimes, env)
        self.execution = Execution(runtimes, env, self.sessions, RemoteHooks())
        self.verdicts = VerdictCache()
        self._compiled: dict[str, CompiledContainer] = {}
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running = False
        self._watch_stop: asyncio.Event | None = None
        self._api_server: asyncio.Server | None = None
        self._api_runner: web.AppRunner | None = None
        self.api_url: str | None = None
        self.encoded_slashes: EncodedSlashes = "reject"
        self.event_body_max = DEFAULT_EVENT_BODY_MAX

    # --- mitmproxy lifecycle ---

    def load(self, loader: Any) -> None:
        loader.add_option(
            "hooks_config",
            Optional[str],  # noqa: UP045 - mitmproxy's option parser needs typing.Optional
            None,
            "A container hooks file, or a folder of them (one container each). Flows for the "
            "services they define run those services' hooks.",
        )
        loader.add_option(
            "hooks_api",
            str,
            DEFAULT_API,
            "HOST:PORT of the proxy-hooks control API, served in this process. Empty: no API. "
            "A non-loopback address needs hooks_api_token.",
        )
        loader.add_option(
            "hooks_events",
            Optional[str],  # noqa: UP045
            None,
            "SQLite file where every hook run is recorded (created on first use), or a "
            "postgresql://user@host:port/db URL of a database that many proxies share. Unset: "
            "<config folder>/.proxy-hooks/events.db beside hooks_config, or, when that folder is "
            "read-only, $XDG_STATE_HOME/proxy-hooks/<digest of its path>/events.db. Empty: none.",
        )
        loader.add_option(
            "hooks_instance",
            str,
            "",
            "The name this proxy gives itself in the events it records (their instance field), to "
            "tell proxies apart in one events store. Empty: <host name>:<process id>.",
        )
        loader.add_option(
            "hooks_events_max_rows", int, DEFAULT_MAX_ROWS, "Keep at most this many events (oldest go first)."
        )
        loader.add_option(
            "hooks_events_max_age_days",
            int,
            DEFAULT_MAX_AGE_DAYS,
            "Drop events older than this; 0 keeps them.",
        )
        loader.add_option(
            "hooks_events_queue",
            int,
            DEFAULT_QUEUE,
            "Events waiting to be written at most; past it runs are dropped (and counted), never waited for.",
        )
        loader.add_option(
            "hooks_event_body_max",
            int,
            DEFAULT_EVENT_BODY_MAX,
            "Bytes of a request or response body a hook script's event carries at most; past it "
            "the event has the first that many and body_truncated: true, while the message "
            "itself goes on whole. A hook that judges bodies should block a truncated one, or "
            "this should be raised.",
        )
        loader.add_option(
            "hooks_allow_inline_scripts",
            bool,
            False,
            "Let the control API's dry-run endpoint run script source sent in the request. Off: "
            "the API must not become a way to run arbitrary code.",
        )
        loader.add_option(
            "hooks_exec_idle",
            int,
            int(DEFAULT_IDLE_S),
            "Seconds an exec-session worker (hooks with script.execId) may sit idle before it exits; "
            "the next run starts it again.",
        )
        loader.add_option(
            "hooks_capture_body_max",
            int,
            DEFAULT_BODY_MAX,
            "Bytes of each request and response body a hook with capture keeps (the rest is cut, "
            "and the exchange says truncated).",
        )
        loader.add_option(
            "hooks_encoded_slashes",
            str,
            "reject",
            "What to do with %2F, %5C and '\\' in a request path for a hooked service: 'reject' "
            "answers 400 (default: upstreams differ on whether they separate segments, so either "
            "reading could dodge a hook); 'decode' treats each as '/', for matching and forwarding.",
        )
        loader.add_option(
            "hooks_api_hosts",
            collections.abc.Sequence[str],
            [],
            "Host names the control API answers to besides its listen address and localhost/"
            "127.0.0.1/[::1] with its port: NAME (any port) or NAME:PORT. Any other Host gets 421 "
            "(a guard against DNS rebinding).",
        )
        loader.add_option(
            "hooks_tsx",
            Optional[str],  # noqa: UP045
            None,
            "Where TypeScript hooks (.ts, .mts) find tsx when node cannot strip types itself "
            "(node < 22.13): the tsx package folder, or its executable. Unset: the tsx `make` "
            "installs in the checkout's var/node, else tsx on PATH. With none, TypeScript hooks "
            "fail as their failure_mode says, naming what to install.",
        )
        loader.add_option(
            "hooks_script_user",
            Optional[str],  # noqa: UP045
            None,
            "When the proxy runs as root: the user (name or uid) hook scripts run as, with that "
            "user's primary group and no supplementary groups; per-run scripts, the per-run "
            "spawner and exec-session workers all run as it. The scripts folder must be readable "
            "by that user. Ignored (with a warning) when the proxy is not root.",
        )
        loader.add_option(
            "hooks_api_token",
            Optional[str],  # noqa: UP045
            None,
            "Bearer token the control API requires (default: $PROXY_HOOKS_API_TOKEN).",
        )

    def configure(self, updated: set[str]) -> None:
        if "termlog_verbosity" in updated:  # (mitmdump's; absent from a bare test context)
            log_every_run(ctx.options.termlog_verbosity == "debug")
        if "hooks_encoded_slashes" in updated:
            mode = ctx.options.hooks_encoded_slashes
            if mode not in ENCODED_SLASH_MODES:
                raise exceptions.OptionsError(
                    f"hooks_encoded_slashes must be one of {', '.join(ENCODED_SLASH_MODES)}, got {mode!r}"
                )
            self.encoded_slashes = mode
        # (Declared by mitmproxy's proxy server addon, absent from a bare test context.)
        streaming = "stream_large_bodies" in ctx.options and ctx.options.stream_large_bodies
        streaming = streaming and ctx.options.hooks_config
        if updated & {"stream_large_bodies", "hooks_config"} and streaming:
            # mitmproxy starts streaming a body once it grows past the limit, before the
            # `request` hook, i.e. before any hook could judge the request.
            raise exceptions.OptionsError(
                "stream_large_bodies cannot be used with proxy-hooks: a streamed request body "
                "reaches the upstream before a hook can judge the request. Unset it "
                "(body_size_limit still bounds what the proxy buffers)."
            )
        if "hooks_event_body_max" in updated:
            if ctx.options.hooks_event_body_max < 0:
                raise exceptions.OptionsError("hooks_event_body_max must be 0 or more (bytes)")
            self.event_body_max = ctx.options.hooks_event_body_max
        if "hooks_script_user" in updated:
            self.sessions.set_user(_script_user(ctx.options.hooks_script_user))
        if "hooks_tsx" in updated:
            self._configure_typescript(ctx.options.hooks_tsx)
        if "hooks_capture_body_max" in updated and ctx.options.hooks_capture_body_max < 0:
            raise exceptions.OptionsError("hooks_capture_body_max must be 0 or more (bytes)")
        if "hooks_exec_idle" in updated:
            if ctx.options.hooks_exec_idle < 1:
                raise exceptions.OptionsError("hooks_exec_idle must be at least 1 (seconds)")
            self.sessions.idle_s = float(ctx.options.hooks_exec_idle)
        restart = self._running and bool(updated & (API_OPTIONS | EVENT_OPTIONS))
        if restart:
            self._stop_background()
        try:
            if updated & {"hooks_api", "hooks_api_token", "hooks_api_hosts"}:
                self._check_api_options()
            # The default store lives beside the hooks, so it moves with hooks_config.
            if updated & EVENT_OPTIONS or ("hooks_config" in updated and ctx.options.hooks_events is None):
                self._configure_events()
            if "hooks_config" in updated:
                self._load_config(ctx.options.hooks_config)
        finally:
            # Also after a rejected change: mitmproxy rolls the option back, we carry on as before.
            if restart:
                self._start_background()

    def _configure_typescript(self, tsx: str | None) -> None:
        """Where TypeScript comes from (hooks_tsx): a warning, not an error, when it is not
        there, as for a missing interpreter: TypeScript hooks then fail as their failure_mode
        says, and everything else runs."""
        runtimes = Runtimes.detect(tsx)
        if runtimes == self.execution.runtimes:
            return
        self.sessions.set_runtimes(runtimes)
        self.execution = dataclasses.replace(self.execution, runtimes=runtimes)
        if tsx and runtimes.typescript is None:
            log.warning("proxy-hooks: %s", runtimes.typescript_missing)

    def running(self) -> None:
        # Sync on purpose: an async running() breaks mitmproxy's hot reload of the -s file.
        self._running = True
        become_subreaper()
        if os.geteuid() == 0 and self.sessions.user is None:
            # A warning, not an error: an ERROR during start-up makes mitmdump exit.
            log.warning(
                "proxy-hooks: the proxy runs as root and hook scripts would too; set "
                "hooks_script_user to run them as an unprivileged user"
            )
        self._start_background()

    def done(self) -> None:
        self._running = False
        self._stop_background()
        for task in list(self._tasks):
            task.cancel()
        self.sessions.close()  # killed and reaped here: nothing outlives the proxy
        self._close_remote_hooks()
        # And whatever escaped a worker's supervisor (one killed from below, or the API's dry-run
        # workers not yet stopped): every child of ours in a session of its own is one of those.
        kill_other_sessions()

    def _close_remote_hooks(self) -> None:
        """The remote hooks' pooled connections (async: scheduled, as the API runner's cleanup)."""
        remote = self.execution.remote
        if remote is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(remote.close())

    # --- flows ---

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # A streamed body reaches the upstream before `request` runs, i.e. before any hook could
        # judge it (mitmproxy's stream_large_bodies, or another addon). Not for our services.
        if flow.request.stream and self._for_a_service(flow):
            flow.request.stream = False

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        if self.config_error is not None:
            # Fail closed: a proxy that should enforce hooks but could not load them passes nothing.
            flow.response = json_response(
                503, {"error": "proxy-hooks configuration failed to load", "reason": self.config_error}
            )
            no_body_after_head(flow)
            return
        attempt = _Attempt("request")
        try:
            await self._judge_request(flow, attempt)
        except Exception as exc:  # the one guard: nothing escapes to mitmproxy
            self._failed(flow, attempt, exc)
        no_body_after_head(flow)  # our own answers (403, 502, 400, 421) included

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        pending = self._pending.get(flow.id)
        if pending is not None and pending.intercept and flow.response is not None:
            flow.response.stream = False  # the hook must see (and may change) the whole body

    async def response(self, flow: http.HTTPFlow) -> None:
        if SERVICE_KEY in flow.metadata:
            try:
                _refuse_protocol_switch(flow)
            except Exception:  # a bug of ours: killed (mitmproxy switches nothing for a killed flow)
                log.exception("proxy-hooks: cannot check the response of %s; flow killed", flow.request.url)
                flow.kill()
        pending = self._pending.pop(flow.id, None)
        if pending is None or flow.response is None:
            return
        # The request-phase verdict is in effect already; recording it is what is left.
        attempt = _Attempt("response", pending.match, pending.run, "recording the request-phase run", True)
        try:
            self._finish(flow, pending.run)
            if pending.intercept and pending.match.hook is not None:
                attempt.run, attempt.applied = None, False
                await self._judge_response(flow, pending.match, attempt)
        except Exception as exc:  # the one guard
            self._failed(flow, attempt, exc)

    def error(self, flow: http.HTTPFlow) -> None:
        pending = self._pending.pop(flow.id, None)
        if pending is not None:
            pending.run.error = pending.run.error or (flow.error.msg if flow.error else None)
            try:
                self._record(pending.run)
            except Exception:  # the flow is gone already; only the record is lost
                log.exception("proxy-hooks: cannot record the run of hook %s", pending.run.hook_id)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """A tunnel to a service's host must carry TLS or HTTP. mitmproxy relays anything else
        as raw TCP — a request behind blank lines (which servers skip), or a request line split
        over two segments — and raw TCP never meets a hook: such a tunnel is closed instead,
        with its server side when the connection is eager and open already. (Scripts' addons
        are asked before mitmproxy's own layer choice, so this decides first.)"""
        address = nextlayer.context.server.address
        if nextlayer.layer is not None or address is None:
            return
        client_data = nextlayer.data_client()
        if not client_data or (_starts_like_tls_or_http(client_data) and not nextlayer.data_server()):
            return
        hooked = self._hooked_tcp(str(address[0]), int(address[1]), nextlayer.context.client.sni)
        if hooked:
            log.warning(
                "proxy-hooks: closed a tunnel to %s:%s that is neither TLS nor HTTP: a hooked "
                "service's host, and hooks judge HTTP only",
                address[0],
                address[1],
            )
            nextlayer.layer = ClosedTunnel(nextlayer.context)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """Behind `next_layer`: raw TCP to a service's host that another addon chose is
        refused. The server connection is not opened; were it open already (eager
        connections), `tcp_message` relays nothing."""
        address = flow.server_conn.address
        if address is None:
            return
        refused = self._hooked_tcp(str(address[0]), int(address[1]), flow.client_conn.sni)
        if refused:
            log.warning(
                "proxy-hooks: refused raw TCP to %s:%s: a hooked service's host, and hooks judge HTTP only",
                address[0],
                address[1],
            )
            flow.metadata[METADATA_KEY] = {"refused": "raw TCP to a hooked service"}
            if flow.server_conn.timestamp_start is None:
                flow.server_conn.error = "refused by proxy-hooks: raw TCP to a hooked service"

    def _hooked_tcp(self, host: str, port: int, sni: str | None) -> bool:
        """Whether raw bytes to host:port (with that SNI) would reach a service's upstream
        unjudged. Two services named, or a bug of ours, count as yes: refuse rather than relay."""
        try:
            containers = self._compiled_containers()
            if not containers:
                return False
            names = FlowNames(host_names(host, port), sni=host_names(sni, port) if sni else ())
            return resolve_service(containers, names) is not None
        except Misdirected:
            return True
        except Exception:
            log.exception("proxy-hooks: cannot judge raw TCP to %s:%s; refused", host, port)
            return True

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        if flow.metadata.get(METADATA_KEY, {}).get("refused") and flow.messages:
            flow.messages[-1].content = b""

    # --- one flow, from match to applied verdict ---

    async def _judge_request(self, flow: http.HTTPFlow, attempt: _Attempt) -> None:
        attempt.stage = "finding the flow's service and hook"
        try:
            match = self._match(flow)
        except Refused as refused:
            _refuse(flow, refused.status, refused.body)
            flow.metadata[METADATA_KEY] = {"refused": refused.status, "reason": refused.body["reason"]}
            return
        if match is None:
            return
        metrics.flow_seen(match.container.name, match.service.name, match.hook is not None)
        attempt.match = match
        attempt.stage = "routing to the service's upstream"
        if match.service.upstream:
            _route(flow, match.service.upstream)
        if match.hook is None:
            return
        attempt.stage = "starting the run"
        run = attempt.run = self._new_run(flow, match, "request")
        if match.hook.hook.mode == "async":
            attempt.stage = "building the script's event"
            event = self._event(flow, run, match)
            run.outcome = "observed"  # the flow goes on; the run's own result is recorded later
            flow.metadata[METADATA_KEY] = run.as_dict()
            self._spawn(self._observe(run, match, event))
            return
        intercept = await self._run_and_apply(flow, match, attempt, run)
        attempt.stage = "recording the run"
        if flow.response is not None:
            self._finish(flow, run)
        else:
            self._pending[flow.id] = _Pending(run, match, intercept)

    async def _judge_response(self, flow: http.HTTPFlow, match: _Match, attempt: _Attempt) -> None:
        assert match.hook is not None
        attempt.stage = "starting the response-phase run"
        run = attempt.run = self._new_run(flow, match, "response")
        await self._run_and_apply(flow, match, attempt, run)
        attempt.stage = "recording the run"
        self._finish(flow, run)

    async def _run_and_apply(
        self, flow: http.HTTPFlow, match: _Match, attempt: _Attempt, run: HookRun
    ) -> bool:
        """Run the script (or take its cached verdict), judge its answer, apply the verdict;
        whether it asked to see the response."""
        assert match.hook is not None

        async def run_script() -> Verdict:
            attempt.stage = "building the script's event"
            event = self._event(flow, run, match)
            attempt.stage = "running the script"
            return await self._run_script(match, event)

        if match.hook.hook.cache is not None:
            attempt.stage = "looking up the hook's cached verdict"
            verdict = await self._run_cached(flow, match, run, run_script)
        else:
            verdict = await run_script()
        attempt.stage = "judging the answer"
        run.settle(verdict)
        attempt.stage = "applying the verdict"
        attempt.keep(flow)
        intercept = apply_verdict(flow, run, verdict, match.hook.hook.failure_mode)
        attempt.applied = True
        flow.metadata[METADATA_KEY] = run.as_dict()
        return intercept

    def _failed(self, flow: http.HTTPFlow, attempt: _Attempt, exc: BaseException) -> None:
        """Anything that went wrong between match and applied verdict: the hook's failure mode
        decides (closed: 502; open: the flow goes on as it was before the hook touched it), and
        the run is recorded as failed. Before a hook is known, the flow is refused (502)."""
        reason = f"proxy-hooks internal error while {attempt.stage}: {type(exc).__name__}: {exc}"[:1000]
        log.error(
            "proxy-hooks: %s (%s %s)", reason, flow.request.method, flow.request.pretty_url, exc_info=exc
        )
        self._pending.pop(flow.id, None)
        match = attempt.match
        if match is None or match.hook is None:
            _refuse(flow, 502, {"error": "proxy-hooks could not judge this flow", "reason": reason})
            return
        closed = match.hook.hook.failure_mode == "closed"
        try:
            run = attempt.run or self._new_run(flow, match, attempt.phase)
            run.outcome, run.error, run.reason = "failed", reason, None
            run.changes = _changes_that_stand(attempt, run, closed)
            if closed:
                flow.response = failure_response(run)
            else:
                attempt.restore(flow)
            flow.metadata[METADATA_KEY] = run.as_dict()
            if flow.response is not None:
                _stamp(flow, run)
            self._capture(flow, run)
        except Exception:  # even describing the failure failed: refuse the flow
            log.exception("proxy-hooks: cannot report the failure of hook %s", match.hook.id)
            if closed:
                _refuse(flow, 502, {"error": "proxy hook failed", "hook": match.hook.id, "reason": reason})
            return
        try:
            self._record(run)
        except Exception:  # the verdict stands; only the record is lost
            log.exception("proxy-hooks: cannot record the failed run of hook %s", run.hook_id)

    def _for_a_service(self, flow: http.HTTPFlow) -> bool:
        """Whether the flow is for a service whose hooks judge it (not a reject-listed one)."""
        try:
            found = resolve_service(self._compiled_containers(), flow_names(flow))
            return found is not None and not found[1].reserved
        except Exception:  # BadHost, Misdirected, or a bug: `request` refuses it; hold the body
            return True

    # --- internals ---

    def _finish(self, flow: http.HTTPFlow, run: HookRun) -> None:
        _stamp(flow, run)
        self._capture(flow, run)
        self._record(run)

    def _capture(self, flow: http.HTTPFlow, run: HookRun) -> None:
        """A capturing hook's exchange, for its event. Observation only: a failure here loses
        the capture, never the verdict."""
        if run.capture is None or self.events is None:
            return
        try:
            run.exchange = exchange_of(flow, run.capture, ctx.options.hooks_capture_body_max, run.secrets)
        except Exception:
            log.exception("proxy-hooks: cannot capture the exchange of hook %s", run.hook_id)

    def _compiled_containers(self) -> list[CompiledContainer]:
        if self.containers is None:
            return []
        current = []
        for name, store in self.containers:
            snapshot = store.last_good
            if snapshot is None:
                continue
            compiled = self._compiled.get(name)
            if compiled is None or compiled.snapshot is not snapshot:
                compiled = self._compiled[name] = CompiledContainer.compile(snapshot)
            current.append(compiled)
        return current

    def _match(self, flow: http.HTTPFlow) -> _Match | None:
        """The flow's one service and its first matching hook; Refused (400, 421) when the flow
        names two services or its Host or path cannot be read one way only."""
        containers = self._compiled_containers()
        if not containers:
            return None
        admitted = admit(containers, lambda: flow_names(flow), flow.request.path, self.encoded_slashes)
        if admitted is None:
            return None
        container, service = admitted.container, admitted.service
        if admitted.path is None:  # a reject-listed service: no hook, nothing read or rewritten
            # Except a switch to another protocol (h2c): past it, requests for any service could
            # ride the connection to an upstream this one shares, unseen.
            flow.metadata[SERVICE_KEY] = f"{container.name}/{service.name}"
            _no_protocol_switch(flow)
            if service.upstream:
                _route(flow, service.upstream)
            return None
        check_headers(flow.request.headers.items(multi=True), service.read_headers)
        flow.metadata[SERVICE_KEY] = f"{container.name}/{service.name}"
        _no_protocol_switch(flow)
        if admitted.path.changed:
            flow.request.path = admitted.path.forward  # the upstream gets what the hooks judged
        client = ClientView(request_facts(flow, admitted.path.canonical), container.groups)
        return _Match(container, service, container.first_match(service, client), client)

    def _new_run(self, flow: http.HTTPFlow, match: _Match, phase: Phase) -> HookRun:
        assert match.hook is not None
        return HookRun.begin(
            match.container.name,
            match.service.name,
            match.hook,
            phase,
            flow.request.pretty_host,
            match.client,
        )

    def _event(self, flow: http.HTTPFlow, run: HookRun, match: _Match) -> ScriptEvent:
        assert match.hook is not None
        user = match.client.request.user
        return hook_event(flow, run, match.hook, match.container.name, run.service, user, self.event_body_max)

    async def _run_script(self, match: _Match, event: ScriptEvent) -> Verdict:
        assert match.hook is not None
        container = match.container
        return await run_hook(
            match.hook, event, container.scripts_root, self.execution, container.session_scripts
        )

    async def _run_cached(
        self, flow: http.HTTPFlow, match: _Match, run: HookRun, run_script: Callable[[], Awaitable[Verdict]]
    ) -> Verdict:
        """A hook with `cache`: its earlier verdict for an equal request, or a run (addon.verdict_cache)."""
        assert match.hook is not None
        request = flow.request
        keyed = CacheRequest(
            match.container.name,
            run.phase,
            request.path.partition("?")[2],
            lambda: request.headers.items(multi=True),
        )
        container = match.container
        return await self.verdicts.run(
            match.hook,
            match.client.request,
            keyed,
            container.snapshot.version,
            container.scripts_root,
            run_script,
        )

    async def _observe(self, run: HookRun, match: _Match, event: ScriptEvent) -> None:
        """An async hook: runs beside the flow, never delays it, and its answer is not applied."""
        try:
            verdict = await self._run_script(match, event)  # (an async hook's verdict is never cached)
            run.settle(verdict)
            if not verdict.failed:
                run.outcome = "observed"
        except Exception as exc:  # nothing to enforce, but the failure is recorded
            run.outcome, run.error = "failed", f"proxy-hooks internal error: {type(exc).__name__}: {exc}"
            log.error("proxy-hooks: async hook %s: %s", run.hook_id, run.error, exc_info=exc)
        try:
            self._record(run)
        except Exception:
            log.exception("proxy-hooks: cannot record the run of async hook %s", run.hook_id)

    def _record(self, run: HookRun) -> None:
        metrics.run_recorded(run)
        self.recorder.record(run)
        if self.events is not None:
            self.events.record(run)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference until it is done, or it may be collected
        task.add_done_callback(self._tasks.discard)

    def _load_config(self, path: str | None) -> None:
        self._compiled.clear()
        self.config_error = None
        if not path:
            self.containers = None
            log.warning("proxy-hooks: no hooks_config set; flows pass untouched (--set hooks_config=PATH)")
            return
        try:
            self.containers = Containers.load(path)
        except ConfigError as exc:
            self.containers = None
            self.config_error = "; ".join(exc.lines)
            message = "proxy-hooks: cannot load hooks_config:\n  " + "\n  ".join(exc.lines)
            if not self._running:
                log.error(message)  # at start-up this makes mitmdump exit, with the reason
                return
            raise exceptions.OptionsError(message) from None
        names = ", ".join(f"{n} v{s.last_good.version}" for n, s in self.containers if s.last_good)
        log.info("proxy-hooks: enforcing hooks of %s", names)
        self._warn_undeployed()

    def _warn_undeployed(self) -> None:
        """Hooks whose script is not there (or, for an exec session, has no handle): the files
        load all the same, so a half-deployed folder never stops the proxy; each such hook fails
        as its failure_mode says until the script is deployed. /healthz says so too."""
        assert self.containers is not None
        for _, store in self.containers:
            snapshot = store.last_good
            if snapshot is None:
                continue
            refs = FileRefs.of(snapshot.hooks_file)
            for line in problem_lines(store.path, deployment_problems(refs, snapshot.scripts_root)):
                log.warning("proxy-hooks: %s (until then the hook fails as its failure_mode says)", line)

    def _configure_events(self) -> None:
        location = _events_location(ctx.options.hooks_events, ctx.options.hooks_config)
        for name in ("hooks_events_max_rows", "hooks_events_queue"):
            if getattr(ctx.options, name) < 1:
                raise exceptions.OptionsError(f"{name} must be at least 1")
        if ctx.options.hooks_events_max_age_days < 0:
            raise exceptions.OptionsError("hooks_events_max_age_days must be 0 (keep) or more")
        if location is None:
            self.events = None
            return
        try:
            store: EventStore = open_event_store(location)
        except RuntimeError as exc:  # PostgreSQL without psycopg installed
            raise exceptions.OptionsError(f"hooks_events: {exc}") from None
        days = ctx.options.hooks_events_max_age_days
        log.info("proxy-hooks: recording hook runs in %s", store.location)
        self.events = EventRecorder(
            store,
            queue_size=ctx.options.hooks_events_queue,
            max_rows=ctx.options.hooks_events_max_rows,
            max_age=dt.timedelta(days=days) if days else None,
            instance=ctx.options.hooks_instance or None,
        )

    def _check_api_options(self) -> None:
        listen = ctx.options.hooks_api
        if not listen:
            return
        try:
            host, _ = parse_listen(listen)
            check_listen(host, resolve_token(ctx.options.hooks_api_token))
        except ListenError as exc:
            raise exceptions.OptionsError(f"hooks_api: {exc}") from None
        try:
            parse_hosts(ctx.options.hooks_api_hosts)
        except ValueError as exc:
            raise exceptions.OptionsError(f"hooks_api_hosts: {exc}") from None

    def _start_background(self) -> None:
        if self.events is not None:
            self.events.start()
        if self.containers is None:
            return
        for name, store in self.containers:
            store.on_change = functools.partial(self._config_changed, name)
        self._watch_stop = asyncio.Event()
        self._spawn(watch_hooks(self.containers, self._watch_stop))
        listen = ctx.options.hooks_api
        if listen:
            host, port = parse_listen(listen)
            try:
                sock = bind(host, port)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    reason = f"port {port} is in use; pick another with --set hooks_api=HOST:PORT"
                else:
                    reason = f"cannot serve the control API on {listen}: {exc.strerror or exc}"
                log.error("proxy-hooks: %s", reason)
                return
            self._spawn(self._serve_api(sock))

    async def _serve_api(self, sock: socket.socket) -> None:
        assert self.containers is not None
        token = resolve_token(ctx.options.hooks_api_token)
        settings = ApiSettings(
            token,
            ctx.options.hooks_allow_inline_scripts,
            tuple(parse_hosts(ctx.options.hooks_api_hosts)),
            parse_listen(ctx.options.hooks_api)[0],
            self.encoded_slashes,  # explain and dry runs read paths as this proxy does
        )
        self._api_runner, self._api_server = await serve_socket(
            self.containers, sock, settings, self.events, self.sessions
        )
        self.api_url = url_of(sock)
        log.info("proxy-hooks control API listening on %s", self.api_url)

    def _config_changed(self, container: str, kind: str, version: int | None, problems: Any) -> None:
        metrics.config_changed(container, kind)
        if self.events is not None:
            self.events.config_changed(container, kind, version, problems)

    def _stop_background(self) -> None:
        if self.events is not None:
            self.events.stop()
        if self._watch_stop is not None:
            self._watch_stop.set()
            self._watch_stop = None
        if self._api_server is not None:
            self._api_server.close()  # stops listening now, so a reloaded addon can bind again
            self._api_server = None
        if self._api_runner is not None:
            runner, self._api_runner = self._api_runner, None
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(runner.cleanup())
        self.api_url = None


pass_over_other_hooks(ProxyHooks)  # see addon.dispatch


def _events_location(option: str | None, config: str | None) -> str | Path | None:
    """hooks_events as given (a file or a postgresql:// URL; empty: none), or the store beside
    the hooks configuration (none beside a PostgreSQL one: it has no folder)."""
    if option is not None:
        if not option:
            return None
        return option if is_database_url(option) else Path(option)
    if not config or is_database_url(config):
        return None
    return default_events_path(Path(config), create=True)


@dataclass
class _Attempt:
    """How far one flow got on its way from match to applied verdict, for the guard: which
    stage failed, for which hook, and the message as it was before the verdict touched it."""

    phase: Phase
    match: _Match | None = None
    run: HookRun | None = None
    stage: str = "starting"
    applied: bool = False  # the verdict is in effect: an open hook keeps it
    _saved: tuple[str, Any] | None = None

    def keep(self, flow: http.HTTPFlow) -> None:
        """Remember the message a verdict is about to change; `restore` puts it back (open)."""
        if (
            self.match is not None
            and self.match.hook is not None
            and self.match.hook.hook.failure_mode == "open"
        ):
            if self.phase == "request":
                self._saved = ("request", flow.request.get_state())
            elif flow.response is not None:
                self._saved = ("response", flow.response.get_state())

    def restore(self, flow: http.HTTPFlow) -> None:
        """For an open hook: the flow goes on as before the failed run, or, when the verdict
        was applied and only what follows failed (recording), as the verdict made it."""
        if self.applied:
            return
        if self._saved is None:
            if self.phase == "request":
                flow.response = None  # whatever a half-applied verdict answered is dropped
            return
        which, state = self._saved
        if which == "request":
            flow.request.set_state(state)
            flow.response = None
        elif flow.response is not None:
            flow.response.set_state(state)


_REQUEST_LINE = re.compile(rb"[A-Za-z]{3,20} [^\r\n]* HTTP/[0-9.]+\r?\n")


def _starts_like_tls_or_http(data: bytes) -> bool:
    """A TLS handshake record, or a whole HTTP/1 request line (HTTP/2's preface included)."""
    return data[0] == 0x16 or _REQUEST_LINE.match(data) is not None


class ClosedTunnel(layer.Layer):
    """In place of raw TCP to a hooked service's host: closes both sides on the first event it
    is handed (a tunnel's layer may not see a Start), relays nothing."""

    closed = False

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if self.closed:
            return
        self.closed = True
        if self.context.server.connected:
            yield commands.CloseConnection(self.context.server)
        yield commands.CloseConnection(self.context.client)


def _changes_that_stand(attempt: _Attempt, run: HookRun, closed: bool) -> RunChanges | None:
    """What a failed run's answer really did to the exchange, for its event's `changes`.

    A request-phase run whose request went upstream before the failure (it failed while being
    recorded, in the response phase) changed that request: its changes stand, whatever the
    client gets next. Otherwise a closed hook answers the failure itself (502/504): nothing
    the answer set or answered reaches anyone. An open hook's verdict stands only when it was
    applied in full (only recording failed); else the flow goes on as it came (`restore`)."""
    if run.phase != attempt.phase:
        return run.changes
    if closed or not attempt.applied:
        return None
    return run.changes


def _stamp(flow: http.HTTPFlow, run: HookRun) -> None:
    """The answer names the hook that acted on it; the run records the status the client got."""
    assert flow.response is not None
    flow.response.headers[HOOK_HEADER] = run.hook_id
    run.status = flow.response.status_code


def _refuse(flow: http.HTTPFlow, status: int, body: dict[str, Any]) -> None:
    """Answer the flow ourselves; if even that fails, kill it: a refused flow never goes on."""
    try:
        flow.response = json_response(status, body)
    except Exception:
        log.exception("proxy-hooks: cannot answer a refused flow; killing it")
        flow.kill()


def _script_user(name: str | None) -> tuple[int, int] | None:
    """hooks_script_user as (uid, gid); None when unset, or when not root (a warning)."""
    if not name:
        return None
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise exceptions.OptionsError(
            f"hooks_script_user: no such user {name!r} on this system (give a user name or uid "
            "from /etc/passwd, e.g. nobody)"
        ) from None
    if os.geteuid() != 0:
        log.warning(
            "proxy-hooks: hooks_script_user=%s is ignored: the proxy does not run as root, so hook "
            "scripts run as its own user (uid %d)",
            name,
            os.geteuid(),
        )
        return None
    return entry.pw_uid, entry.pw_gid


def _no_protocol_switch(flow: http.HTTPFlow) -> None:
    """A service's flow may upgrade to WebSocket (mitmproxy keeps it HTTP-aware; its handshake
    met the hooks) and to nothing else: past any other 101 the connection is raw bytes that no
    hook sees (h2c, say). The request goes on as plain HTTP/1.1."""
    upgrade = flow.request.headers.get_all("upgrade")
    if not upgrade or (len(upgrade) == 1 and upgrade[0].strip().lower() == "websocket"):
        return
    del flow.request.headers["upgrade"]
    flow.request.headers.pop("http2-settings", None)
    if "connection" in flow.request.headers:
        tokens = [t.strip() for t in flow.request.headers["connection"].split(",")]
        kept = [t for t in tokens if t and t.lower() not in ("upgrade", "http2-settings")]
        if kept:
            flow.request.headers["connection"] = ", ".join(kept)
        else:
            del flow.request.headers["connection"]


def _refuse_protocol_switch(flow: http.HTTPFlow) -> None:
    """Past a 101 that is not WebSocket, mitmproxy relays raw bytes (h2c, any protocol) that no
    hook sees: an upstream that switches anyway (despite `_no_protocol_switch`) gets its answer
    replaced by a 502, and the connection closes."""
    response = flow.response
    if response is None or response.status_code != 101 or flow.websocket:
        return
    reason = f"upgrade to {response.headers.get('upgrade', '')!r}: hooks judge HTTP only"
    flow.response = json_response(502, {"error": "protocol switch refused", "reason": reason})
    flow.response.headers["connection"] = "close"


def _route(flow: http.HTTPFlow, upstream: str) -> None:
    """Send the flow to the service's upstream, keeping the Host the client asked for."""
    target = urllib.parse.urlsplit(upstream)
    host_header = flow.request.host_header
    flow.request.scheme = target.scheme
    flow.request.host = target.hostname or flow.request.host
    flow.request.port = target.port or (443 if target.scheme == "https" else 80)
    if host_header is not None:
        flow.request.host_header = host_header
