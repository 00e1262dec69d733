"""Between mitmproxy flows and the hook protocol: facts for matching, the event a script reads,
and applying a script's answer to the flow."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from mitmproxy import http
from mitmproxy.net.http import status_codes

from addon import changes
from addon.engine import HookRun, Verdict
from addon.matching import BadHost, CompiledHook, FlowNames, RequestFacts, host_names, parse_host_header
from addon.protocol import (
    DEFAULT_EVENT_BODY_MAX,
    PROTOCOL_VERSION,
    BadAnswer,
    Header,
    RequestChange,
    ResponseSpec,
    ScriptEvent,
    body_bytes,
    event_body_fields,
    header_name_problem,
    header_value_problem,
    path_problem,
    status_problem,
)

HOOK_HEADER = "x-proxy-hooks-hook"
METADATA_KEY = "proxy_hooks"


def client_address(flow: http.HTTPFlow) -> str:
    peer = flow.client_conn.peername
    host = str(peer[0]) if peer else ""
    return host.removeprefix("::ffff:")


def proxy_user(flow: http.HTTPFlow) -> str | None:
    auth = flow.metadata.get("proxyauth")
    return str(auth[0]) if auth else None


def request_facts(flow: http.HTTPFlow, canonical_path: str) -> RequestFacts:
    """What matching reads of a flow; `canonical_path` is `addon.paths.canonicalize`'s."""
    headers: dict[str, str] = {}
    for name, value in flow.request.headers.items(multi=True):
        headers.setdefault(name.lower(), value)
    return RequestFacts.read(
        flow.request.method,  # upper-case already
        canonical_path,
        headers,
        client_address(flow),
        proxy_user(flow),
        flow.request.path.partition("?")[2],
        form_methods(flow.request),
    )


_MULTIPART_METHOD = re.compile(rb'name="?_method"?[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)')


def form_methods(request: http.Request) -> tuple[str, ...]:
    """`_method` fields of a POSTed form (Rails, Spring, method-override read them): the method
    a framework may act on instead. Bodies are looked into only when they are forms that name
    a method somewhere (a plain `bytes.find` first: uploads can be large)."""
    if request.method != "POST":
        return ()
    content_type = request.headers.get("content-type", "").lower()
    urlencoded = content_type.startswith("application/x-www-form-urlencoded")
    if not urlencoded and not content_type.startswith("multipart/form-data"):
        return ()
    body = request.raw_content or b""
    if body.find(b"method") < 0:  # `_method` and `%5Fmethod` alike; frameworks match it exactly
        return ()
    if urlencoded:
        fields = urllib.parse.parse_qs(body.decode("latin-1"), keep_blank_values=True)
        return tuple(fields.get("_method", []))
    return tuple(value.decode("latin-1") for value in _MULTIPART_METHOD.findall(body))


def flow_names(flow: http.HTTPFlow) -> FlowNames:
    """Where the flow goes, by each source on its own (see `resolve_service`). BadHost when the
    Host header is malformed, repeated, or disagrees with HTTP/2's :authority."""
    request = flow.request
    default_port = 443 if request.scheme == "https" else 80
    given = request.headers.get_all("host")
    values = {value.strip().lower() for value in given}
    if request.authority:
        values.add(request.authority.strip().lower())
    if len(values) > 1 or len(given) > 1:
        raise BadHost(
            "the request carries more than one Host (repeated header, or Host and :authority differ)"
        )
    host = parse_host_header(values.pop(), default_port) if values else ()
    sni = flow.client_conn.sni
    return FlowNames(
        destination=host_names(request.host, request.port),
        host=host,
        sni=host_names(sni, request.port) if sni else (),
    )


def _message_headers(message: http.Message) -> list[Header]:
    return [(name, value) for name, value in message.headers.items(multi=True)]


class Exchange(Protocol):
    """What hooks read and change: a flow, or a dry run's sample request and response."""

    request: http.Request
    response: http.Response | None


def hook_event(
    flow: Exchange,
    run: HookRun,
    hook: CompiledHook,
    container: str,
    service: str,
    user: str | None = None,
    body_max: int = DEFAULT_EVENT_BODY_MAX,
) -> ScriptEvent:
    """Protocol v1's stdin object (its type is the protocol's definition: mypy holds this to it);
    bodies cut at `body_max` bytes (`body_truncated` says so)."""
    script = hook.hook.script
    request = flow.request
    event: ScriptEvent = {
        "version": PROTOCOL_VERSION,
        "phase": run.phase,
        "container": container,
        "service": service,
        "hook": {
            "id": hook.id,
            "position": hook.position,
            "script": {"path": script.path, "subdomain": script.subdomain, "execId": script.execId},
        },
        "client": {"address": run.client, "user": user, "groups": run.groups},
        "request": {
            "method": request.method,
            "url": request.pretty_url,
            "host": request.pretty_host,
            "port": request.port,
            "path": request.path,
            "headers": _message_headers(request),
            **event_body_fields(request.get_content(strict=False), body_max),
        },
        "response": None,
    }
    if run.phase == "response" and flow.response is not None:
        response = flow.response
        event["response"] = {
            "status": response.status_code,
            "headers": _message_headers(response),
            **event_body_fields(response.get_content(strict=False), body_max),
        }
    return event


def _shape(request: http.Request) -> changes.MessageShape:
    return changes.MessageShape(
        request.method,
        request.path,
        frozenset(name.lower() for name in request.headers),
        len(request.raw_content or b""),
    )


def apply_request_change(flow: Exchange, change: RequestChange) -> changes.RunChanges | None:
    """Everything is checked before anything changes: a refused answer leaves the request as it
    came (what `failure_mode: open` lets through). Returns what changed."""
    request = flow.request
    content = body_bytes(change.body, change.body_base64)
    if change.path is not None and (problem := path_problem(change.path)):
        raise BadAnswer(f"request.path: {problem}")
    edit = change.headers
    if edit is not None:
        _check_headers(edit.set, edit.remove)
    before = _shape(request)
    if change.method is not None:
        request.method = change.method
    if change.path is not None:
        request.path = change.path
    if edit is not None:
        for name in edit.remove:
            request.headers.pop(name, None)
        for name, value in edit.set.items():
            request.headers[name] = value
    if content is not None:
        request.content = content
    return changes.request_changes(
        before,
        _shape(request),
        edit.set if edit is not None else (),
        edit.remove if edit is not None else (),
        body_replaced=content is not None,
    )


def _check_headers(headers: Mapping[str, str], remove: Iterable[str] = ()) -> None:
    """The last look at every header an answer sets or removes before it can reach the wire
    (the models checked them already; a CR/LF getting past would split the message)."""
    for name in remove:
        if problem := header_name_problem(name):
            raise BadAnswer(problem)
    for name, value in headers.items():
        if problem := header_name_problem(name) or header_value_problem(name, value):
            raise BadAnswer(problem)


def _set_body(message: http.Response, spec: ResponseSpec, content: bytes | None, method: str) -> None:
    if content is None:
        return
    message.content = content  # and its content-length
    if not isinstance(spec.body, str) and spec.body is not None and "content-type" not in message.headers:
        message.headers["content-type"] = "application/json"
    if method.upper() == "HEAD":
        # The headers a GET would get, no body: the client reads none after a HEAD, and would
        # take those bytes (the answer's, maybe the client's own echoed) for the next response.
        message.raw_content = b""


def _check_status(spec: ResponseSpec, upstream: int | None, body_size: int) -> None:
    if problem := status_problem(spec.status, upstream, body_size):
        raise BadAnswer(problem)


def _set_status(response: http.Response, status: int) -> None:
    """A new status gets its own reason phrase ("" for a code without one): a 200 OK turned into
    a 403 must not say "OK". HTTP/2 and 3 have no reason phrase; theirs stays empty."""
    if status == response.status_code:
        return
    response.status_code = status
    if not (response.is_http2 or response.is_http3):
        response.reason = status_codes.RESPONSES.get(status, "")


def response_from(spec: ResponseSpec, method: str = "GET") -> http.Response:
    """The response the proxy sends in the request's place (`method`: the request's)."""
    content = body_bytes(spec.body, spec.body_base64)
    _check_status(spec, None, len(content or b""))
    _check_headers(spec.headers)
    response = http.Response.make(spec.status or 200, b"", dict(spec.headers))
    _set_body(response, spec, content, method)
    return response


def apply_response_change(
    response: http.Response, spec: ResponseSpec, method: str = "GET"
) -> changes.RunChanges | None:
    """Checked whole first, then applied (as `apply_request_change`). Returns what changed."""
    content = body_bytes(spec.body, spec.body_base64)
    body_size = len(content) if content is not None else len(response.raw_content or b"")
    _check_status(spec, response.status_code, body_size)
    _check_headers(spec.headers)
    status_before, size_before = response.status_code, len(response.raw_content or b"")
    if spec.status is not None:
        _set_status(response, spec.status)
    for name, value in spec.headers.items():
        response.headers[name] = value
    _set_body(response, spec, content, method)
    size_after = len(response.raw_content or b"")
    body = None if content is None else changes.NumberChange(before=size_before, after=size_after)
    return changes.response_changes(status_before, response.status_code, spec.headers, body)


def no_body_after_head(flow: Exchange) -> None:
    """A response to HEAD goes with the headers a GET would get and no body: the client reads
    none, and would take those bytes for the next response on the connection."""
    response = flow.response
    if response is not None and response.raw_content and flow.request.method.upper() == "HEAD":
        response.raw_content = b""  # content-length stays


def json_response(status: int, body: dict[str, Any]) -> http.Response:
    return http.Response.make(status, json.dumps(body).encode(), {"content-type": "application/json"})


def blocked_response(run: HookRun) -> http.Response:
    return json_response(
        403,
        {"error": "blocked by proxy hook", "hook": run.hook_id, "service": run.service, "reason": run.reason},
    )


def failure_response(run: HookRun) -> http.Response:
    status = 504 if run.outcome == "timeout" else 502
    return json_response(
        status,
        {
            "error": f"proxy hook {run.outcome}",
            "hook": run.hook_id,
            "service": run.service,
            "reason": run.error,
        },
    )


def apply_verdict(flow: Exchange, run: HookRun, verdict: Verdict, failure_mode: str) -> bool:
    """Change the flow as the verdict says. Returns whether the script asked to see the response.

    An answer that cannot be applied (bad base64, say) turns into a failed run.
    """
    answer = verdict.answer
    try:
        if verdict.failed:
            if failure_mode == "closed":
                flow.response = failure_response(run)
        elif verdict.outcome == "blocked":
            flow.response = blocked_response(run)
        elif answer is not None and run.phase == "request":
            if answer.response is not None:
                response = flow.response = response_from(answer.response, flow.request.method)
                run.changes = changes.answered(
                    response.status_code, answer.response.headers, len(response.raw_content or b"")
                )
            elif answer.request is not None:
                run.changes = apply_request_change(flow, answer.request)
        elif answer is not None and answer.response is not None and flow.response is not None:
            run.changes = apply_response_change(flow.response, answer.response, flow.request.method)
    except BadAnswer as exc:
        run.outcome, run.error = "failed", f"bad script output: {exc}"
        if failure_mode == "closed":
            flow.response = failure_response(run)
        return False
    return bool(answer and answer.intercept_response and not verdict.failed and run.phase == "request")
