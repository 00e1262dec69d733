"""What a capturing hook's run keeps of its flow (mitmproxy glue for addon.capture): the request
as it went on (after the hook's changes) and the response the client got, bodies bounded."""

from __future__ import annotations

from mitmproxy import http

from addon.capture import CapturedRequest, CapturedResponse, Exchange, message_fields
from addon.environments import redact
from addon.model import Capture


def exchange_of(
    flow: http.HTTPFlow, capture: Capture, body_max: int, secrets: frozenset[str] = frozenset()
) -> Exchange:
    request = flow.request
    captured_request = CapturedRequest(
        method=request.method,
        url=redact(request.pretty_url, secrets) or "",
        http_version=request.http_version,
        **message_fields(
            request.headers.items(multi=True), request.raw_content, body_max, capture.redact, secrets
        ),
    )
    response = flow.response
    captured_response = None
    if response is not None:
        captured_response = CapturedResponse(
            status=response.status_code,
            reason=response.reason,
            http_version=response.http_version,
            **message_fields(response.headers.items(multi=True), response.raw_content, body_max, (), secrets),
        )
    present = {name.lower() for name, _ in request.headers.items(multi=True)}
    return Exchange(
        request=captured_request,
        response=captured_response,
        redacted=[name for name in capture.redact if name in present],
    )
