"""Fail closed on anything: a fault injected into each stage of the hook path, in a real mitmdump
(tests/fault_injector.py), ends as that hook's failure — `closed`: 502 and the upstream never
sees a request the hook had not let through; `open`: the flow goes on as it was before the hook
touched it (or as an applied verdict left it) — and is recorded as a `failed` event naming the
stage. A fault before any hook is known refuses the flow. The proxy serves on afterwards."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import ROOT, Mitmdump, Upstream, wait_for, write_json
from tests.proxy_fixtures import SCRIPTS, upstream  # noqa: F401 - fixture

INJECTOR = ROOT / "tests" / "fault_injector.py"
EVENTS = "/api/v1/containers/faults/proxy/events"
# Stages that come before the verdict is applied: a closed hook's request never reaches the
# upstream, an open hook's goes on unchanged.
BEFORE_APPLY = ["start", "event", "run", "judge", "apply"]
# After it: recording what happened.
AFTER_APPLY = ["finish", "record"]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Mitmdump]:
    home = tmp_path_factory.mktemp("faults")
    shutil.copytree(SCRIPTS, home / "scripts")
    hooks = [
        {"match": {"method": "*", "path": "/closed/**"}, "script": {"path": "/act.sh"}},
        {"match": {"method": "*", "path": "/open/**"}, "script": {"path": "/act.sh"}, "failure_mode": "open"},
    ]
    doc = {
        "container": "faults",
        "services": {"app": {"hosts": ["app.test"], "upstream": upstream.url}},
        "hooks": {"app": hooks},
    }
    process = Mitmdump(write_json(home / "faults.json", doc), home / "confdir", "-s", str(INJECTOR))
    yield process
    process.stop()


def send(proxy: Mitmdump, mode: str, stage: str, phase: str, act: str) -> tuple[httpx.Response, str]:
    mark = uuid.uuid4().hex[:12]
    with proxy.client() as http:
        response = http.get(
            f"http://app.test/{mode}/fault-{stage}-{phase}/{mark}", headers={"x-act": act, "x-marker": mark}
        )
    return response, mark


def failed_event(proxy: Mitmdump, mark: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        with proxy.api() as api:
            events = api.get(EVENTS, params={"outcome": "failed", "limit": 500}).json()["data"]["events"]
        return next((e for e in events if mark in (e["path"] or "")), None)

    return wait_for(find, 15, f"a failed event for {mark}")  # type: ignore[no-any-return]


def reached(upstream: Upstream, mark: str) -> int:
    return len(upstream.seen(mark))


@pytest.mark.parametrize("stage", BEFORE_APPLY + AFTER_APPLY)
def test_a_fault_in_a_closed_hook_answers_502_and_is_recorded(
    proxy: Mitmdump, upstream: Upstream, stage: str
) -> None:
    response, mark = send(proxy, "closed", stage, "request", "continue")
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "proxy hook failed" and f"injected fault in {stage}" in body["reason"]
    # Before the verdict, the upstream never sees it; after it ("continue" lets it through,
    # then recording fails when the response is back) the client still gets the 502.
    assert reached(upstream, mark) == (0 if stage in BEFORE_APPLY else 1)
    event = failed_event(proxy, mark)
    assert "proxy-hooks internal error while" in event["error"] and "injected fault" in event["error"]
    assert event["status"] == 502 and event["phase"] == "request"


@pytest.mark.parametrize("stage", BEFORE_APPLY + AFTER_APPLY)
def test_a_fault_in_an_open_hook_lets_the_flow_go_on_and_is_recorded(
    proxy: Mitmdump, upstream: Upstream, stage: str
) -> None:
    response, mark = send(proxy, "open", stage, "request", "modify")
    assert response.status_code == 200 and response.json()["upstream"] is True
    [seen] = upstream.seen(mark)
    if stage in BEFORE_APPLY:  # unchanged: the hook's modification never happened
        assert seen["method"] == "GET" and "x-added" not in seen["headers"]
    else:  # the verdict was applied; only recording it failed
        assert seen["method"] == "PUT" and seen["headers"]["x-added"] == "bash"
    assert "injected fault" in failed_event(proxy, mark)["error"]


@pytest.mark.parametrize("stage", BEFORE_APPLY + AFTER_APPLY)
@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_fault_in_the_response_phase(proxy: Mitmdump, upstream: Upstream, stage: str, mode: str) -> None:
    response, mark = send(proxy, mode, stage, "response", "edit-response")
    assert reached(upstream, mark) == 1
    if mode == "closed":
        assert response.status_code == 502 and f"injected fault in {stage}" in response.json()["reason"]
    elif stage in BEFORE_APPLY:  # the upstream's answer, not the hook's edit
        assert response.status_code == 200 and response.json()["upstream"] is True
    else:
        assert response.status_code == 299 and response.text == "edited by bash"
    event = failed_event(proxy, mark)
    assert event["phase"] == "response" and "injected fault" in event["error"]


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_fault_before_any_hook_is_known_refuses_the_flow(
    proxy: Mitmdump, upstream: Upstream, mode: str
) -> None:
    response, mark = send(proxy, mode, "match", "request", "continue")
    assert response.status_code == 502
    assert response.json()["error"] == "proxy-hooks could not judge this flow"
    assert reached(upstream, mark) == 0


def test_a_fault_checking_a_response_kills_the_flow(proxy: Mitmdump, upstream: Upstream) -> None:
    """The protocol-switch check runs on every response of a service: if it fails, the flow is
    killed rather than its response passed on unchecked."""
    mark = uuid.uuid4().hex[:12]
    with proxy.client() as http:
        try:
            response: httpx.Response | None = http.get(f"http://app.test/open/fault-switch-request/{mark}")
        except httpx.HTTPError:
            response = None  # the connection was closed: what a killed flow gets
    assert response is None or response.status_code >= 500
    assert reached(upstream, mark) == 1  # the request went on; its response did not come back


def test_the_proxy_serves_on_after_the_faults(proxy: Mitmdump, upstream: Upstream) -> None:
    mark = uuid.uuid4().hex[:12]
    with proxy.client() as http:
        assert http.get(f"http://app.test/closed/{mark}", headers={"x-act": "block"}).status_code == 403
        assert http.get(f"http://app.test/open/{mark}").status_code == 200
    assert proxy.proc.poll() is None


@pytest.mark.parametrize("stage", AFTER_APPLY)
@pytest.mark.parametrize(
    ("mode", "act", "phase", "client_status", "changed"),
    [
        # Closed: the failure answers 502 in place of what the hook answered or edited.
        ("closed", "respond", "request", 502, None),
        ("closed", "edit-response", "response", 502, None),
        # The modified request reached the upstream before recording it failed: that stands.
        ("closed", "modify", "request", 502, "request"),
        # Open, verdict applied in full (only recording failed): the exchange is as it made it.
        ("open", "respond", "request", 418, "response"),
        ("open", "edit-response", "response", 299, "response"),
        ("open", "modify", "request", 200, "request"),
    ],
)
def test_a_failed_runs_changes_say_what_really_happened_to_the_exchange(
    proxy: Mitmdump,
    upstream: Upstream,
    stage: str,
    mode: str,
    act: str,
    phase: str,
    client_status: int,
    changed: str | None,
) -> None:
    """A run that failed after its answer was applied carries `changes` only for what still
    reached the upstream or the client; a closed hook's 502 replaces what it answered."""
    response, mark = send(proxy, mode, stage, phase, act)
    assert response.status_code == client_status, response.text
    event = failed_event(proxy, mark)
    assert event["status"] == client_status
    if changed is None:
        assert event["changes"] is None
    else:
        assert set(k for k, v in event["changes"].items() if v) == {changed}
    if act == "modify":  # what the upstream saw is what `changes` says
        [seen] = upstream.seen(mark)
        assert seen["method"] == "PUT" and event["changes"]["request"]["method"] == {
            "before": "GET",
            "after": "PUT",
        }
