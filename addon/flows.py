"""Between mitmproxy flows and the hook protocol: facts for matching, the event a script reads,
and applying a script's answer to the flow."""

from __future__ import annotations

import json
from typing import Any, Protocol

from mitmproxy import http

from addon.engine import HookRun, Verdict
from addon.matching import BadHost, CompiledHook, FlowNames, RequestFacts, host_names, parse_host_header
from addon.protocol import (
    PROTOCOL_VERSION,
    BadAnswer,
    RequestChange,
    ResponseSpec,
    body_bytes,
    body_fields,
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
    )


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


def _message_headers(message: http.Message) -> list[list[str]]:
    return [[name, value] for name, value in message.headers.items(multi=True)]


class Exchange(Protocol):
    """What hooks read and change: a flow, or a dry run's sample request and response."""

    request: http.Request
    response: http.Response | None


def hook_event(
    flow: Exchange, run: HookRun, hook: CompiledHook, container: str, service: str, user: str | None = None
) -> dict[str, Any]:
    """Protocol v1's stdin object."""
    script = hook.hook.script
    request = flow.request
    event: dict[str, Any] = {
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
            **body_fields(request.get_content(strict=False)),
        },
        "response": None,
    }
    if run.phase == "response" and flow.response is not None:
        response = flow.response
        event["response"] = {
            "status": response.status_code,
            "headers": _message_headers(response),
            **body_fields(response.get_content(strict=False)),
        }
    return event


def apply_request_change(flow: Exchange, change: RequestChange) -> None:
    request = flow.request
    if change.method is not None:
        request.method = change.method
    if change.path is not None:
        request.path = change.path
    if change.headers is not None:
        for name in change.headers.remove:
            request.headers.pop(name, None)
        for name, value in change.headers.set.items():
            request.headers[name] = value
    content = body_bytes(change.body, change.body_base64)
    if content is not None:
        request.content = content


def _set_body(message: http.Message, spec: ResponseSpec) -> None:
    content = body_bytes(spec.body, spec.body_base64)
    if content is None:
        return
    message.content = content
    if not isinstance(spec.body, str) and spec.body is not None and "content-type" not in message.headers:
        message.headers["content-type"] = "application/json"


def response_from(spec: ResponseSpec) -> http.Response:
    response = http.Response.make(spec.status or 200, b"", dict(spec.headers))
    _set_body(response, spec)
    return response


def apply_response_change(response: http.Response, spec: ResponseSpec) -> None:
    if spec.status is not None:
        response.status_code = spec.status
    for name, value in spec.headers.items():
        response.headers[name] = value
    _set_body(response, spec)


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
                flow.response = response_from(answer.response)
            elif answer.request is not None:
                apply_request_change(flow, answer.request)
        elif answer is not None and answer.response is not None and flow.response is not None:
            apply_response_change(flow.response, answer.response)
    except BadAnswer as exc:
        run.outcome, run.error = "failed", f"bad script output: {exc}"
        if failure_mode == "closed":
            flow.response = failure_response(run)
        return False
    return bool(answer and answer.intercept_response and not verdict.failed and run.phase == "request")
