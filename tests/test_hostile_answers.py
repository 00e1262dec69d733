"""Hostile answers end to end: a real mitmdump with the addon, a real upstream, a raw client.

Each hook script under `scripts/hostile/` answers what the request's `x-hostile` header asks
for: a line break in a header, a smuggled request in a path, a framing header, a 100,000-deep
body, a 1xx status. With `failure_mode: closed` the client gets a 502 naming the problem; with
`open` the flow passes unchanged; either way nothing injected reaches the upstream or the client,
and the run is a `failed` event."""

from __future__ import annotations

import json
import shutil
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.harness import Mitmdump, Upstream, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, home, proxy, upstream  # noqa: F401 - fixtures

EVENTS = "/api/v1/containers/e2e/proxy/events"
TOO_DEEP = "answer nested deeper than 64 levels"
# A body that is itself a request: if framing broke, the upstream would read it as a second one.
SMUGGLE = "GET /smuggled HTTP/1.1\r\nHost: auth.test\r\nInjected: yes\r\n\r\n"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@dataclass
class Raw:
    """A response as the bytes on the wire say it: status line, header lines, body."""

    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ", 2)[1])

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    proxy: Mitmdump, hostile: str, method: str = "POST", body: str = SMUGGLE, path: str = "/x"
) -> tuple[Raw, str]:
    """One request through the proxy on its own connection, read back as raw bytes."""
    mark = uuid.uuid4().hex[:12]
    data = body.encode()
    head = (
        f"{method} http://auth.test{path} HTTP/1.1\r\nHost: auth.test\r\nx-hostile: {hostile}\r\n"
        f"x-marker: {mark}\r\ncontent-length: {len(data)}\r\nconnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(head.encode() + data)
        received = b""
        while chunk := sock.recv(65536):  # the proxy closes: connection: close
            received += chunk
    head_bytes, _, rest = received.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    return Raw(status_line, headers, rest), mark


def hostile_hook(
    api: httpx.Client, script: str, failure_mode: str = "closed", exec_id: str | None = None
) -> str:
    spec = hook("/**", script, failure_mode=failure_mode, timeout=10_000)
    if exec_id is not None:
        spec["script"]["execId"] = exec_id
    return str(set_hooks(api, "e2e", "auth", [spec])["hooks"][0]["id"])


def failed_event(api: httpx.Client, hook_id: str, needle: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        rows = api.get(EVENTS, params={"hookId": hook_id, "limit": 50}).json()["data"]["events"]
        return next((e for e in rows if e["outcome"] == "failed" and needle in (e["error"] or "")), None)

    event: dict[str, Any] = wait_for(found, 10, f"a failed event with {needle!r}")
    return event


def assert_nothing_injected(upstream: Upstream, raw: Raw) -> None:
    for seen in upstream.requests:
        assert "injected" not in seen["headers"] and "/smuggled" not in seen["path"], seen
    assert not raw.header("injected"), raw
    assert b"Injected" not in raw.body.replace(b"Injected: yes", b"") or raw.status == 502


# (x-hostile, what the 502's reason says, whether the upstream was asked before the answer)
INJECTIONS = [
    ("crlf-response-header", "response.headers: header 'x-a' has a line break", False),
    ("crlf-response-name", "is not a valid header name", False),
    ("crlf-response-edit", "response.headers: header 'x-a' has a line break", True),
    ("crlf-response-edit-name", "is not a valid header name", True),
    ("crlf-set-value", "request.headers.set: header 'x-a' has a line break", False),
    ("crlf-set-name", "request.headers.set: header 'x-a\\r\\nInjected' is not a valid header name", False),
    (
        "crlf-remove",
        "request.headers.remove: header 'x-marker\\r\\nInjected: yes' is not a valid header",
        False,
    ),
    ("nul-set-value", "header 'x-a' has a NUL character", False),
    ("crlf-path", "request.path: has a space", False),
    ("length-set", "header 'content-length' is the proxy's to set", False),
    ("length-remove", "header 'content-length' is the proxy's to set", False),
]


@pytest.mark.parametrize(("hostile", "reason", "upstream_asked"), INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_injection_fails_closed_with_a_502_naming_the_header(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream, hostile: str, reason: str, upstream_asked: bool
) -> None:
    hook_id = hostile_hook(api, "/hostile/hostile.py")
    raw, mark = raw_request(proxy, hostile)
    assert raw.status == 502, raw
    assert raw.json()["reason"].startswith("bad script output: ") and reason in raw.json()["reason"], (
        raw.json()
    )
    assert raw.header("x-a") == []
    assert len(upstream.seen(mark)) == (1 if upstream_asked else 0)
    assert_nothing_injected(upstream, raw)
    failed_event(api, hook_id, reason)


@pytest.mark.parametrize(("hostile", "reason", "upstream_asked"), INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_injection_with_failure_mode_open_passes_the_flow_unchanged(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream, hostile: str, reason: str, upstream_asked: bool
) -> None:
    hook_id = hostile_hook(api, "/hostile/hostile.py", failure_mode="open")
    raw, mark = raw_request(proxy, hostile)
    assert raw.status == 200 and raw.json()["upstream"] is True, raw
    assert raw.header("x-a") == [] and raw.header("x-upstream") == ["yes"]
    [seen] = upstream.seen(mark)  # x-marker still there: not even a removal was applied
    assert seen["path"] == "/x" and seen["body"] == SMUGGLE and "x-a" not in seen["headers"]
    assert seen["headers"]["content-length"] == str(len(SMUGGLE))
    assert_nothing_injected(upstream, raw)
    failed_event(api, hook_id, reason)


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("hostile", "body"), [("deep", ""), ("deep-echo", deep_json(2000)), ("deep-echo", deep_json(65))]
)
def test_deep_answer_of_a_per_run_script_is_a_failed_run(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream, hostile: str, body: str
) -> None:
    hook_id = hostile_hook(api, "/hostile/hostile.py")
    raw, mark = raw_request(proxy, hostile, body=body)
    assert raw.status == 502 and raw.json()["reason"] == f"bad script output: {TOO_DEEP}", raw
    assert upstream.seen(mark) == []
    failed_event(api, hook_id, TOO_DEEP)


def test_an_answer_at_the_depth_bound_still_works(proxy: Mitmdump, api: httpx.Client) -> None:
    hostile_hook(api, "/hostile/hostile.py")
    raw, _ = raw_request(proxy, "deep-echo", body=deep_json(62))  # + response + body = 64 levels
    assert raw.status == 200 and raw.json() == json.loads(deep_json(62))


def session_pid(proxy: Mitmdump) -> int:
    raw, _ = raw_request(proxy, "whoami", method="GET", body="")
    assert raw.status == 200, raw
    return int(raw.json()["pid"])


JS, PY = "/hostile/hostile_session.js", "/hostile/hostile_session.py"
CRLF = "response.headers: header 'x-a' has a line break"
SESSION_CASES = [
    pytest.param(JS, "deep-echo", deep_json(2000), TOO_DEEP, id="node-echo-2000", marks=needs_node),
    pytest.param(JS, "deep-raw", "", TOO_DEEP, id="node-frame-100000", marks=needs_node),
    pytest.param(JS, "deep-100", "", TOO_DEEP, id="node-100", marks=needs_node),
    pytest.param(JS, "crlf-response-header", "", CRLF, id="node-crlf", marks=needs_node),
    pytest.param(PY, "deep", "", "answer nested too deep to encode", id="python-100000"),
    pytest.param(PY, "deep-100", "", TOO_DEEP, id="python-100"),
    pytest.param(PY, "crlf-response-header", "", CRLF, id="python-crlf"),
]


@pytest.mark.parametrize(("script", "hostile", "body", "reason"), SESSION_CASES)
def test_hostile_exec_session_answer_fails_its_own_run(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream, script: str, hostile: str, body: str, reason: str
) -> None:
    """The run fails at once (a 502, not a timeout) and the worker lives on for the next run."""
    hook_id = hostile_hook(api, script, exec_id=f"hostile-{uuid.uuid4().hex[:8]}")
    pid = session_pid(proxy)
    raw, mark = raw_request(proxy, hostile, body=body)
    assert raw.status == 502, raw
    assert raw.json()["reason"].startswith("bad answer from handle: ") and reason in raw.json()["reason"], (
        raw.json()
    )
    assert upstream.seen(mark) == []
    assert_nothing_injected(upstream, raw)
    failed_event(api, hook_id, reason)
    assert session_pid(proxy) == pid


@pytest.mark.parametrize("status", [100, 101, 199, 600])
def test_a_1xx_or_out_of_range_status_is_refused(proxy: Mitmdump, api: httpx.Client, status: int) -> None:
    hostile_hook(api, "/hostile/hostile.py")
    raw, _ = raw_request(proxy, f"status-{status}")
    assert raw.status == 502 and raw.json()["reason"].startswith("bad script output: response.status: "), raw


def test_a_changed_status_has_its_own_reason_phrase_on_the_wire(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream
) -> None:
    hostile_hook(api, "/hostile/hostile.py")
    raw, mark = raw_request(proxy, "edit-status-403")
    assert raw.status_line == "HTTP/1.1 403 Forbidden", raw
    assert raw.json()["upstream"] is True and len(upstream.seen(mark)) == 1
    raw, _ = raw_request(proxy, "edit-status-101")
    assert raw.status == 502 and "status 101 is not allowed for a changed status" in raw.json()["reason"], raw
    raw, _ = raw_request(proxy, "status-418")
    assert raw.status_line == "HTTP/1.1 418 I'm a teapot", raw


def test_a_no_content_status_with_a_body_is_refused(proxy: Mitmdump, api: httpx.Client) -> None:
    hostile_hook(api, "/hostile/hostile.py")
    raw, _ = raw_request(proxy, "no-content-with-body")
    assert raw.status == 502 and "status 204 cannot have a body" in raw.json()["reason"], raw


@pytest.mark.parametrize("hostile", ["body-for-head", "edit-body-for-head"])
def test_a_response_to_head_goes_without_its_body(proxy: Mitmdump, api: httpx.Client, hostile: str) -> None:
    """The client reads no body after a HEAD: the answer's would be its next response."""
    hostile_hook(api, "/hostile/hostile.py")
    raw, _ = raw_request(proxy, hostile, method="HEAD", body="")
    assert raw.status == 200 and raw.body == b"", raw
    assert raw.header("content-length") == [str(len("HTTP/1.1 200 OK\r\nInjected: yes\r\n\r\n"))]
