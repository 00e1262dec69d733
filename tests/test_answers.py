"""A script's answer is untrusted input: every way it could put a header, a path, a status or a
nesting on the wire that breaks HTTP is a named failed run, never an exception, never bytes on
the wire. Generated classes of input, through the same path a live flow takes: stdout → `judge`
→ `apply_verdict` on a mitmproxy test flow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.test import tflow

from addon.engine import HookRun, judge
from addon.flows import apply_request_change, apply_response_change, apply_verdict, response_from
from addon.protocol import (
    MAX_ANSWER_DEPTH,
    BadAnswer,
    HeaderEdit,
    RequestChange,
    ResponseSpec,
    body_bytes,
    event_body_fields,
    parse_answer,
    parse_answer_object,
    status_problem,
)
from addon.scripts import RunResult
from addon.sessions import _parse_frame

# --- the pieces: an answer through judge and apply_verdict ---


def new_flow(upstream: http.Response | None = None) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.headers["x-keep"] = "1"
    flow.response = upstream
    return flow


def upstream_response(status: int = 200, content: bytes = b"upstream body", **kw: Any) -> http.Response:
    return http.Response.make(status, content, {"x-upstream": "yes", **kw})


def new_run(phase: str) -> HookRun:
    return HookRun(
        container="c", service="s", hook_id="h1", position=0, phase=phase,  # type: ignore[arg-type]
        mode="sync", script="/x.py", runtime="python", method="GET", host="h", path="/", client="127.0.0.1",
        groups=[],
    )  # fmt: skip


def run_answer(
    answer: Any,
    phase: str = "request",
    failure_mode: str = "closed",
    upstream: http.Response | None = None,
    session: bool = False,
) -> tuple[http.HTTPFlow, HookRun]:
    """What the proxy does with `answer` (an object to print as JSON, or raw stdout bytes)."""
    flow = new_flow(upstream if phase == "response" else None)
    run = new_run(phase)
    if session:
        result = RunResult(None, b"", b"", 1.0, answer=answer, session=True)
    else:
        stdout = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        result = RunResult(0, stdout, b"", 1.0)
    verdict = judge(result, phase, 1000)  # type: ignore[arg-type]
    run.settle(verdict)
    apply_verdict(flow, run, verdict, failure_mode)
    return flow, run


def assert_refused(
    flow: http.HTTPFlow, run: HookRun, *needles: str, prefix: str = "bad script output: "
) -> None:
    assert run.outcome == "failed", run
    assert run.error is not None and run.error.startswith(prefix), run.error
    for needle in needles:
        assert needle in run.error, run.error
    assert flow.response is not None and flow.response.status_code == 502
    assert json.loads(flow.response.content or b"")["reason"] == run.error


# --- headers: every forbidden character × every place an answer can put a header ---

# C0 controls but HTAB, and DEL: never in a field value (RFC 9110 5.5); lone surrogates cannot
# be encoded at all.
FORBIDDEN = [chr(c) for c in range(0x20) if c != 0x09] + ["\x7f", "\ud800", "\udc0a"]


def why(char: str) -> str:
    if char in "\r\n":
        return "has a line break"
    if char == "\0":
        return "has a NUL character"
    if "\ud800" <= char <= "\udfff":
        return "lone surrogate"
    return "has a control character"


def value_places(name: str, value: str) -> list[tuple[str, dict[str, Any], str]]:
    """(id, answer, phase) for each place an answer sets a header value."""
    return [
        ("response.headers/request-phase", {"response": {"headers": {name: value}}}, "request"),
        ("response.headers/response-phase", {"response": {"headers": {name: value}}}, "response"),
        ("request.headers.set", {"request": {"headers": {"set": {name: value}}}}, "request"),
    ]


def name_places(name: str) -> list[tuple[str, dict[str, Any], str]]:
    """(id, answer, phase) for each place an answer names a header."""
    return [
        *value_places(name, "v"),
        ("request.headers.remove", {"request": {"headers": {"remove": [name]}}}, "request"),
    ]


VALUE_CASES = [
    pytest.param(answer, phase, char, id=f"{place}-0x{ord(char):02x}-{where}")
    for char in FORBIDDEN
    for where, value in [("middle", f"v{char}Injected: yes"), ("end", f"v{char}"), ("alone", char)]
    for place, answer, phase in value_places("x-a", value)
]


@pytest.mark.parametrize(("answer", "phase", "char"), VALUE_CASES)
def test_forbidden_character_in_a_header_value_is_a_failed_run(answer: Any, phase: str, char: str) -> None:
    flow, run = run_answer(answer, phase, upstream=upstream_response())
    assert_refused(flow, run, "header 'x-a'", why(char))
    assert "Injected" not in flow.response.headers if flow.response else True


def test_crlf_in_a_value_has_the_issue_s_message() -> None:
    flow, run = run_answer({"response": {"headers": {"x-a": "v\r\nInjected: yes"}}})
    assert_refused(flow, run, "header 'x-a' has a line break")


BAD_NAMES = [
    "x a", "x:a", ":status", "x(a", "x)a", "x,a", "x;a", "x=a", 'x"a', "x/a", "x[a", "x@a", "x?a", "x{a",
    "é", "x-é", "", " ", "x-a\r\nInjected", "x\n", "\r\n", "x\0", "x\t", "\x7f", "\ud800",
]  # fmt: skip
NAME_CASES = [
    pytest.param(answer, phase, id=f"{place}-{name.encode('unicode_escape').decode() or 'empty'}")
    for name in BAD_NAMES
    for place, answer, phase in name_places(name)
]


@pytest.mark.parametrize(("answer", "phase"), NAME_CASES)
def test_a_header_name_that_is_not_a_token_is_a_failed_run(answer: Any, phase: str) -> None:
    flow, run = run_answer(answer, phase, upstream=upstream_response())
    assert_refused(flow, run, "is not a valid header name")


FRAMING_CASES = [
    pytest.param(answer, phase, id=f"{place}-{name}")
    for name in ("content-length", "Transfer-Encoding")
    for place, answer, phase in name_places(name)
]


@pytest.mark.parametrize(("answer", "phase"), FRAMING_CASES)
def test_framing_headers_stay_the_proxy_s(answer: Any, phase: str) -> None:
    flow, run = run_answer(answer, phase, upstream=upstream_response())
    assert_refused(flow, run, "is the proxy's to set")


@pytest.mark.parametrize(
    ("answer", "phase"), [pytest.param(a, p, id=i) for i, a, p in name_places("x-a\r\nInjected")]
)
def test_with_failure_mode_open_the_flow_passes_unchanged(answer: Any, phase: str) -> None:
    upstream = upstream_response()
    before_request, before_response = new_flow().request.copy(), upstream.copy()
    flow, run = run_answer(answer, phase, "open", upstream=upstream)
    assert run.outcome == "failed" and "is not a valid header name" in (run.error or "")
    assert flow.request.data == before_request.data
    if phase == "request":
        assert flow.response is None
    else:
        assert flow.response is not None and flow.response.data == before_response.data


def test_a_refused_answer_changes_nothing_even_past_the_models() -> None:
    """Defence in depth: answers built without validation (model_construct) are refused where
    they are applied, before anything of them is applied."""
    flow = new_flow()
    before = flow.request.copy()
    change = RequestChange.model_construct(
        method="POST",
        path="/other",
        headers=HeaderEdit.model_construct(set={"x-ok": "1", "x-a": "v\r\nI: y"}, remove=[]),
    )
    with pytest.raises(BadAnswer, match="header 'x-a' has a line break"):
        apply_request_change(flow, change)
    assert flow.request.data == before.data
    for bad_path in ("/a\r\nI: y", "/a b", "a"):
        with pytest.raises(BadAnswer, match=r"request\.path"):
            apply_request_change(flow, RequestChange.model_construct(path=bad_path, headers=None))
    with pytest.raises(BadAnswer, match="not a valid header name"):
        apply_request_change(
            flow, RequestChange.model_construct(headers=HeaderEdit.model_construct(set={}, remove=["a\nb"]))
        )
    with pytest.raises(BadAnswer, match="has a NUL"):
        response_from(
            ResponseSpec.model_construct(status=200, headers={"x-a": "\0"}, body=None, body_base64=None)
        )
    upstream = upstream_response()
    with pytest.raises(BadAnswer, match="line break"):
        apply_response_change(
            upstream,
            ResponseSpec.model_construct(status=403, headers={"x-a": "\n"}, body=None, body_base64=None),
        )
    assert upstream.status_code == 200 and "x-a" not in upstream.headers
    assert flow.request.data == before.data


def test_good_headers_still_pass() -> None:
    odd_but_valid = {
        "x-tab": "a\tb",
        "x-utf8": "café ☕",
        "x-symbols": "!#$%&'*+-.^_`|~",
        "X-Case": "v",
        "x-empty": "",
    }
    flow, run = run_answer({"response": {"status": 200, "headers": odd_but_valid}})
    assert run.outcome == "responded" and flow.response is not None
    for name, value in odd_but_valid.items():
        assert flow.response.headers[name] == value
    flow, run = run_answer(
        {"request": {"headers": {"set": {"x-new": "1"}, "remove": ["x-keep"]}, "path": "/a/b?q=1"}}
    )
    assert run.outcome == "modified"
    assert flow.request.headers["x-new"] == "1" and "x-keep" not in flow.request.headers
    assert flow.request.path == "/a/b?q=1"


header_text = st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=12) | st.text(
    st.sampled_from("a-\r\n\0\t :é\x01\x7f"), max_size=6
)


@settings(max_examples=300, deadline=None)
@given(name=header_text, value=header_text, place=st.sampled_from(["request", "response", "set"]))
def test_whatever_the_text_no_header_line_is_ever_split(name: str, value: str, place: str) -> None:
    """Either the run fails, or the message on the wire has exactly the header lines expected."""
    answer = (
        {"request": {"headers": {"set": {name: value}}}}
        if place == "set"
        else {"response": {"headers": {name: value}}}
    )
    upstream = upstream_response(200, b"")
    before = len(upstream.headers)
    had = name in upstream.headers  # case-insensitive, as a set replaces
    flow, run = run_answer(answer, "request" if place != "response" else "response", upstream=upstream)
    if run.outcome == "failed":
        assert (
            run.error is not None and run.error.startswith("bad script output: ") and repr(name) in run.error
        )
        return
    if place == "set":
        head = http1.assemble_request_head(flow.request)
        expected = len(flow.request.headers)
    else:
        assert flow.response is not None
        head = http1.assemble_response_head(flow.response)
        expected = len(flow.response.headers)
        assert place == "request" or expected == before + (not had)
    lines = head.split(b"\r\n")
    assert lines[-2:] == [b"", b""] and len(lines) == 1 + expected + 2
    assert not any(b"\r" in line or b"\n" in line or b"\0" in line for line in lines)


# --- the path and the method a script may set ---


@pytest.mark.parametrize(
    "path",
    [f"/a{c}b" for c in [*FORBIDDEN, " ", "é"]] + ["", "a", "http://evil.test/", "*", "/a\r\nHost: evil"],
    ids=lambda p: p.encode("unicode_escape").decode() or "empty",
)
def test_a_path_that_is_not_one_printable_request_target_is_a_failed_run(path: str) -> None:
    flow, run = run_answer({"request": {"path": path}})
    assert_refused(flow, run, "request.path: ")


@pytest.mark.parametrize("method", ["GET\r\n", "get", "TRACE", "CONNECT", "G ET", ""])
def test_only_listed_methods(method: str) -> None:
    flow, run = run_answer({"request": {"method": method}})
    assert_refused(flow, run, "request.method")


# --- statuses ---


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (99, "must be 100-599, got 99"), (100, "200-599"), (101, "200-599"),
        (199, "200-599"), (600, "must be 100-599, got 600"), (True, "must be an integer"),
        (False, "must be an integer"), ("200", "must be an integer"), (200.0, "must be an integer"),
        (None, ""),
    ],
)  # fmt: skip
def test_status_of_a_response_the_proxy_sends(status: Any, message: str) -> None:
    flow, run = run_answer({"response": {"status": status, "body": "x"}})
    if status is None:  # unset: 200
        assert run.outcome == "responded" and flow.response is not None and flow.response.status_code == 200
        return
    assert_refused(flow, run, "response.status: ")
    assert any(part in (run.error or "") for part in message.split("|"))


@pytest.mark.parametrize("status", [200, 204, 304, 403, 418, 299, 599])
def test_statuses_a_proxy_may_send(status: int) -> None:
    flow, run = run_answer({"response": {"status": status}})
    assert run.outcome == "responded" and flow.response is not None and flow.response.status_code == status


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_statuses_carry_no_body(status: int) -> None:
    flow, run = run_answer({"response": {"status": status, "body": "HTTP/1.1 200 OK\r\n\r\nsmuggled"}})
    assert_refused(flow, run, f"status {status} cannot have a body")
    # response phase: changed to it with the upstream's body still there, or a body added to it
    flow, run = run_answer({"response": {"status": status}}, "response", upstream=upstream_response())
    assert_refused(flow, run, f"status {status} cannot have a body")
    flow, run = run_answer({"response": {"body": "x"}}, "response", upstream=upstream_response(status, b""))
    assert_refused(flow, run, f"status {status} cannot have a body")
    flow, run = run_answer(
        {"response": {"status": status, "body": ""}}, "response", upstream=upstream_response()
    )
    assert run.outcome == "modified" and flow.response is not None and flow.response.status_code == status


@pytest.mark.parametrize(
    ("upstream", "status", "allowed"),
    [
        (200, 100, False), (200, 101, False), (200, 199, False), (101, 101, True), (101, None, True),
        (101, 100, False), (304, 304, True), (304, None, True), (200, 304, True), (200, 599, True),
        (500, 200, True), (200, 200, True),
    ],
)  # fmt: skip
def test_status_in_the_response_phase(upstream: int, status: int | None, allowed: bool) -> None:
    """A changed status must be 200-599; the upstream's own may be kept whatever it is. (Set to
    304 here the response has no body, so it may; with one, see the test above.)"""
    response = upstream_response(upstream, b"")
    flow, run = run_answer(
        {"response": {"status": status, "headers": {"x-s": "1"}}}, "response", upstream=response
    )
    if allowed:
        assert run.outcome == "modified" and flow.response is not None
        assert flow.response.status_code == (status or upstream) and flow.response.headers["x-s"] == "1"
    else:
        assert_refused(flow, run, "response.status: ")


def test_a_response_to_head_has_the_headers_of_a_get_and_no_body() -> None:
    body = "HTTP/1.1 200 OK\r\nInjected: yes\r\n\r\n"
    for phase in ("request", "response"):
        flow = new_flow(upstream_response(200, b"") if phase == "response" else None)
        flow.request.method = "HEAD"
        run = new_run(phase)
        verdict = judge(
            RunResult(0, json.dumps({"response": {"body": body}}).encode(), b"", 1.0), phase, 1000
        )  # type: ignore[arg-type]
        run.settle(verdict)
        apply_verdict(flow, run, verdict, "closed")
        assert run.outcome in ("responded", "modified") and flow.response is not None
        assert flow.response.raw_content == b"" and flow.response.headers["content-length"] == str(len(body))
        assert http1.assemble_response(flow.response).endswith(b"\r\n\r\n")


def test_status_rules_alone() -> None:
    assert status_problem(None, None, 10) is None
    assert status_problem(101, 101, 0) is None
    assert "200-599" in (status_problem(101, None, 0) or "")
    assert "a changed status" in (status_problem(100, 200, 0) or "")
    assert "cannot have a body" in (status_problem(None, 304, 3) or "")


@pytest.mark.parametrize(
    ("status", "reason"), [(403, "Forbidden"), (418, "I'm a teapot"), (299, ""), (404, "Not Found")]
)
def test_a_changed_status_gets_its_own_reason_phrase(status: int, reason: str) -> None:
    flow, run = run_answer({"response": {"status": status}}, "response", upstream=upstream_response())
    assert run.outcome == "modified" and flow.response is not None
    assert flow.response.reason == reason
    assert http1.assemble_response_head(flow.response).startswith(f"HTTP/1.1 {status} {reason}\r\n".encode())


def test_a_kept_status_keeps_the_upstream_s_reason_phrase() -> None:
    response = upstream_response()
    response.reason = "Fine"
    flow, _ = run_answer(
        {"response": {"status": 200, "headers": {"x-s": "1"}}}, "response", upstream=response
    )
    assert flow.response is not None and flow.response.reason == "Fine"


def test_http2_has_no_reason_phrase_and_nothing_breaks() -> None:
    response = upstream_response()
    response.http_version, response.reason = "HTTP/2.0", ""
    flow, run = run_answer({"response": {"status": 403}}, "response", upstream=response)
    assert run.outcome == "modified" and flow.response is not None
    assert flow.response.status_code == 403 and flow.response.reason == ""


# --- depth ---


def nested(depth: int) -> Any:
    """A JSON value of exactly `depth` levels (a list is a level)."""
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + '"leaf"' + "]" * depth  # built as text: json.dumps would recurse


# (answer template with DEEP where the nesting goes, levels the answer adds around it)
DEEP_PLACES = [
    pytest.param('{"response": {"body": DEEP}}', 2, id="response.body"),
    pytest.param('{"request": {"body": DEEP}}', 2, id="request.body"),
    pytest.param('{"response": {"headers": {"x-a": DEEP}}}', 3, id="response.headers"),
    pytest.param('{"unknown": DEEP}', 1, id="unknown-field"),
    pytest.param('{"block": DEEP}', 1, id="block"),
]


@pytest.mark.parametrize(("template", "around"), DEEP_PLACES)
@pytest.mark.parametrize("depth", [MAX_ANSWER_DEPTH + 1, 200, 999, 5000, 100_000])
def test_an_answer_nested_too_deep_is_a_named_failed_run(template: str, around: int, depth: int) -> None:
    stdout = template.replace("DEEP", deep_text(depth - around)).encode()
    flow, run = run_answer(stdout)
    assert_refused(flow, run, f"answer nested deeper than {MAX_ANSWER_DEPTH} levels")


@pytest.mark.parametrize("depth", [MAX_ANSWER_DEPTH - 1, MAX_ANSWER_DEPTH])
def test_an_answer_at_the_bound_is_fine(depth: int) -> None:
    stdout = '{"response": {"body": DEEP}}'.replace("DEEP", deep_text(depth - 2)).encode()
    flow, run = run_answer(stdout)
    assert run.outcome == "responded" and flow.response is not None
    assert json.loads(flow.response.content or b"") == nested(depth - 2)
    # the same answer from an exec session
    flow, run = run_answer(json.loads(stdout), session=True)
    assert run.outcome == "responded"


@pytest.mark.parametrize("depth", [MAX_ANSWER_DEPTH + 1, 500])
def test_an_exec_session_answer_nested_too_deep(depth: int) -> None:
    flow, run = run_answer({"response": {"body": nested(depth - 2)}}, session=True)
    assert_refused(
        flow, run, f"answer nested deeper than {MAX_ANSWER_DEPTH} levels", prefix="bad answer from handle: "
    )


def test_deep_objects_count_as_lists_do() -> None:
    def objects(levels: int) -> str:
        return '{"a": ' * levels + "1" + "}" * levels

    at_bound = f'{{"response": {{"body": {objects(MAX_ANSWER_DEPTH - 2)}}}}}'
    assert parse_answer(at_bound.encode()).response is not None
    assert parse_answer_object(json.loads(at_bound)).response is not None
    over = f'{{"response": {{"body": {objects(MAX_ANSWER_DEPTH - 1)}}}}}'
    with pytest.raises(BadAnswer, match="nested deeper"):
        parse_answer(over.encode())
    with pytest.raises(BadAnswer, match="nested deeper"):
        parse_answer_object(json.loads(over))


def test_brackets_inside_strings_are_not_nesting() -> None:
    answer = parse_answer(json.dumps({"response": {"body": "[" * 10_000 + "{" * 10_000}}).encode())
    assert (
        answer.response is not None
        and body_bytes(answer.response.body, None) == b"[" * 10_000 + b"{" * 10_000
    )


@pytest.mark.parametrize("depth", [MAX_ANSWER_DEPTH + 1, 1500, 100_000])
def test_a_session_frame_nested_too_deep_fails_its_own_run(depth: int) -> None:
    """What a worker sends is parsed in the proxy's event loop: too deep for json.loads is that
    run's failure (the id comes first), not an exception in a protocol callback."""
    for sep in (b'{"id":7,"answer":', b'{"id": 7, "answer": '):
        frame = _parse_frame(
            sep + ('{"response": {"body": ' + deep_text(depth) + "}}").encode() + b', "log": ""}'
        )
        assert frame["id"] == 7
        if "error" in frame:
            assert (
                frame["error"]
                == f"bad answer from handle: answer nested deeper than {MAX_ANSWER_DEPTH} levels"
            )
        else:  # parsed: the depth bound is then judge's (parse_answer_object)
            with pytest.raises(BadAnswer, match="nested deeper"):
                parse_answer_object(frame["answer"])
    with pytest.raises(ValueError, match="too deep"):
        _parse_frame(b'{"answer": ' + deep_text(100_000).encode() + b', "id": 7}')


# --- whatever a script prints: a named failed run, or a message that is still well-formed ---

text = st.text(max_size=8) | st.sampled_from(
    ["x-a", "/p", "GET", "v\r\nI: y", "\ud800", "content-length", ""]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
answers = st.fixed_dictionaries(
    {},
    optional={
        "request": st.fixed_dictionaries(
            {},
            optional={
                "method": text | st.sampled_from(["GET", "HEAD", "POST"]),
                "path": text,
                "headers": st.fixed_dictionaries(
                    {},
                    optional={
                        "set": st.dictionaries(text, text, max_size=3),
                        "remove": st.lists(text, max_size=3),
                    },
                ),
                "body": json_values,
                "body_base64": text,
            },
        ),
        "response": st.fixed_dictionaries(
            {},
            optional={
                "status": st.integers(0, 1000) | json_values,
                "headers": st.dictionaries(text, text, max_size=3),
                "body": json_values,
                "body_base64": text | st.just("aGk="),
            },
        ),
        "block": st.booleans() | json_values,
        "reason": text,
        "intercept_response": st.booleans(),
    },
)


def assert_well_formed(head: bytes) -> None:
    lines = head.split(b"\r\n")
    assert lines[-2:] == [b"", b""]
    for line in lines[1:-2]:
        name, sep, value = line.partition(b":")
        assert sep and name and not any(c in name for c in b" \t\r\n\0"), line
        assert not any(c in value for c in b"\r\n\0"), line


@settings(max_examples=400, deadline=None)
@given(
    answer=answers, phase=st.sampled_from(["request", "response"]), method=st.sampled_from(["GET", "HEAD"])
)
def test_whatever_the_answer_no_exception_and_no_broken_message(answer: Any, phase: str, method: str) -> None:
    upstream = upstream_response(200, b"" if method == "HEAD" else b"upstream body")  # none after HEAD
    flow = new_flow(upstream if phase == "response" else None)
    flow.request.method = method
    run = new_run(phase)
    verdict = judge(RunResult(0, json.dumps(answer).encode(), b"", 1.0), phase, 1000)  # type: ignore[arg-type]
    run.settle(verdict)
    apply_verdict(flow, run, verdict, "closed")  # raises nothing
    if run.outcome == "failed":
        assert run.error is not None and run.error.startswith("bad script output: ")
        assert flow.response is not None and flow.response.status_code == 502
    assert_well_formed(http1.assemble_request_head(flow.request))
    if flow.response is not None:
        assert 200 <= flow.response.status_code <= 599
        assert_well_formed(http1.assemble_response_head(flow.response))
        no_body = flow.response.status_code in (204, 304) or method == "HEAD"
        assert not (
            no_body and flow.response.raw_content and run.outcome != "failed" and run.outcome != "blocked"
        )


# --- the body an event carries ---


def test_a_body_within_the_bound_is_carried_whole() -> None:
    assert event_body_fields(b"abc", 3) == {"body": "abc", "body_base64": None, "body_truncated": False}
    assert event_body_fields(None, 3) == {"body": None, "body_base64": None, "body_truncated": False}


def test_a_body_past_the_bound_is_cut_and_says_so() -> None:
    assert event_body_fields(b"abcdef", 4) == {"body": "abcd", "body_base64": None, "body_truncated": True}
    assert event_body_fields(b"abcdef", 0) == {"body": "", "body_base64": None, "body_truncated": True}


def test_a_character_cut_at_the_bound_is_left_out_and_text_stays_text() -> None:
    body = "aé€".encode()  # 1 + 2 + 3 bytes
    assert event_body_fields(body, 2)["body"] == "a"
    assert event_body_fields(body, 4)["body"] == "aé"
    assert event_body_fields(body, 5)["body"] == "aé"


def test_a_binary_body_past_the_bound_is_its_first_bytes_in_base64() -> None:
    fields = event_body_fields(b"\xff\x00\x01\x02", 2)
    assert fields == {"body": None, "body_base64": "/wA=", "body_truncated": True}
