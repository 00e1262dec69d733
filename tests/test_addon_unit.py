"""The addon inside mitmproxy's own test master (taddons), beside the end-to-end tests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow

from addon.enforcer import ProxyHooks
from tests.conftest import demo, write_container
from tests.harness import set_aside, wait_for


def flow_to(host: str, path: str = "/") -> tflow.HTTPFlow:
    flow = tflow.tflow()
    flow.request.host = host
    flow.request.path = path
    flow.request.headers["host"] = host
    return flow


async def test_invalid_config_at_startup_is_an_error_and_fails_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_container(tmp_path / "demo.json", demo(file_version="one"))
    addon = ProxyHooks()
    with taddons.context(addon) as tctx, caplog.at_level(logging.ERROR):
        tctx.configure(addon, hooks_config=str(path), hooks_api="")
        # mitmdump exits on an error logged while it starts; this is that error.
        assert "cannot load hooks_config" in caplog.text and "file_version: must be an integer" in caplog.text
        flow = flow_to("auth.demo.test")
        await addon.request(flow)
        assert flow.response is not None and flow.response.status_code == 503


async def test_invalid_config_at_runtime_is_rejected_and_keeps_the_old_one(tmp_path: Path) -> None:
    good = write_container(tmp_path / "good" / "demo.json")
    bad = write_container(tmp_path / "bad" / "demo.json", demo(hooks={"x": []}))
    addon = ProxyHooks()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, hooks_config=str(good), hooks_api="")
        addon._running = True  # as after running(): option changes now come from a user
        with pytest.raises(exceptions.OptionsError, match=r"hooks\.x: service 'x' is not defined"):
            tctx.configure(addon, hooks_config=str(bad))
        addon._running = False
        assert tctx.options.hooks_config == str(good)  # mitmproxy rolled the option back
        assert addon.containers is not None and addon.config_error is None


async def test_flow_for_no_service_is_untouched(tmp_path: Path) -> None:
    addon = ProxyHooks()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, hooks_config=str(write_container(tmp_path / "demo.json")), hooks_api="")
        flow = flow_to("elsewhere.test", "/v1/login")
        before = flow.request.copy()
        await addon.request(flow)
        assert flow.response is None and flow.request.data == before.data
        assert "proxy_hooks" not in flow.metadata


async def test_non_loopback_api_without_token_is_an_option_error(tmp_path: Path) -> None:
    addon = ProxyHooks()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="without a token"):
            tctx.configure(addon, hooks_api="0.0.0.0:8082")
        tctx.configure(addon, hooks_api="0.0.0.0:8082", hooks_api_token="t")


class ListRecorder:
    def __init__(self) -> None:
        self.runs: list[dict[str, object]] = []

    def record(self, run: object) -> None:
        self.runs.append(run.as_dict())  # type: ignore[attr-defined]


async def test_a_run_is_noted_in_flow_metadata_and_recorded(tmp_path: Path) -> None:
    path = write_container(
        tmp_path / "demo.json",
        demo(hooks={"auth": [{"id": "01hz8x9k2b3c4d5e6f7g8h9j0k", "match": {"method": "*", "path": "/**"},
                              "script": {"path": "/hooks/block.py"}}]}),
    )  # fmt: skip
    (tmp_path / "scripts" / "hooks" / "block.py").write_text(
        "import json, sys\njson.load(sys.stdin)\nprint(json.dumps({'block': True, 'reason': 'no'}))\n"
    )
    addon = ProxyHooks()
    recorder = ListRecorder()
    addon.recorder = recorder
    with taddons.context(addon) as tctx:
        tctx.configure(addon, hooks_config=str(path), hooks_api="")
        flow = flow_to("auth.demo.test", "/v1/x?q=1")
        await addon.request(flow)
        assert flow.response is not None and flow.response.status_code == 403
        await addon.response(flow)
    meta = flow.metadata["proxy_hooks"]
    assert meta["hook_id"] == "01hz8x9k2b3c4d5e6f7g8h9j0k" and meta["outcome"] == "blocked"
    assert meta["service"] == "auth" and meta["path"] == "/v1/x" and meta["blocked"] is True
    [run] = recorder.runs
    assert run["status"] == 403 and run["reason"] == "no" and run["exit_code"] == 0
    assert run["runtime"] == "python" and run["client"] == "127.0.0.1"


async def test_a_corrupt_events_file_is_moved_aside_and_the_proxy_serves_and_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_container(
        tmp_path / "demo.json",
        demo(hooks={"auth": [{"id": "01hz8x9k2b3c4d5e6f7g8h9j0k", "match": {"method": "*", "path": "/**"},
                              "script": {"path": "/hooks/block.sh"}}]}),
    )  # fmt: skip
    (tmp_path / "scripts" / "hooks" / "block.sh").write_text("echo no >&2; exit 2\n")
    events = tmp_path / "events.db"
    events.write_bytes(b"garbage, not SQLite" * 50)
    addon = ProxyHooks()
    with taddons.context(addon) as tctx, caplog.at_level(logging.WARNING):
        tctx.configure(addon, hooks_config=str(path), hooks_api="", hooks_events=str(events))
        addon.running()
        try:
            assert "was corrupt" in caplog.text
            flow = flow_to("auth.demo.test")
            await addon.request(flow)
            await addon.response(flow)
            assert flow.response is not None and flow.response.status_code == 403
            assert addon.events is not None
            wait_for(lambda: addon.events is not None and addon.events.written == 1, 10, "the run recorded")
            assert addon.events.dropped == 0
        finally:
            addon.done()
    (aside,) = set_aside(tmp_path)
    assert aside.read_bytes().startswith(b"garbage")


async def test_changing_inline_scripts_at_runtime_restarts_the_api(tmp_path: Path) -> None:
    addon = ProxyHooks()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon,
            hooks_config=str(write_container(tmp_path / "demo.json")),
            hooks_api="127.0.0.1:0",
            hooks_events="",
        )
        addon.running()
        try:
            first = await _api_server(addon)
            tctx.configure(addon, hooks_allow_inline_scripts=True)
            second = await _api_server(addon)
            assert second is not first  # served anew, with the new setting
        finally:
            addon.done()


async def _api_server(addon: ProxyHooks) -> object:
    import asyncio

    for _ in range(500):
        if addon._api_server is not None:
            return addon._api_server
        await asyncio.sleep(0.01)  # polling the addon's start-up task, with a deadline
    raise AssertionError("the control API did not start")


async def test_hooks_event_body_max_is_bytes_and_never_negative(tmp_path: Path) -> None:
    addon = ProxyHooks()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, hooks_config=str(write_container(tmp_path / "demo.json")), hooks_api="")
        assert addon.event_body_max == 1024 * 1024
        tctx.configure(addon, hooks_event_body_max=10)
        assert addon.event_body_max == 10
        with pytest.raises(exceptions.OptionsError, match="hooks_event_body_max must be 0 or more"):
            tctx.configure(addon, hooks_event_body_max=-1)
        assert addon.event_body_max == 10
