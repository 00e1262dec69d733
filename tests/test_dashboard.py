"""The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
Selenium) against `make run`'s configuration: a copy of configs/, the demo services, and
`proxy-hooks run` with its API, on free ports. Each page is used as a person would, and what it
claims is checked against the proxy itself (a real request through it) or the API.

Screenshots of each page go to $PROXY_HOOKS_SCREENSHOTS when it is set (`make screenshots`
writes docs/screenshots/, which the README shows); a normal run writes none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ApiProcess, proxy_hooks_command
from tests.demo_run import DemoServices
from tests.harness import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no Chromium here: apt-get install -y chromium chromium-driver (.ci/run does)",
)
SCREENSHOTS = os.environ.get("PROXY_HOOKS_SCREENSHOTS")
UI_DEADLINE_S = 20.0
BLOCK_DELETES = "01jd2x9k2b3c4d5e6f7g8h9j1m"  # the demo's bash hook: DELETE /v1/users/** -> 403
LOGIN_TRACE = "01jd2x9k2b3c4d5e6f7g8h9j0k"
ADD_HEADER = "01jd2x9k2b3c4d5e6f7g8h9j2n"  # GET /v1/** adds x-demo-hook
CHECK_PROFILE = "01jd2x9k2b3c4d5e6f7g8h9j5r"  # TypeScript: PUT /v1/profile with a bad email -> 400
AUTH_HOOKS = "/api/v1/containers/demo/proxy/hooks/auth"


@dataclass
class DemoRun:
    """`proxy-hooks run` as `make run` starts it, with the demo services beside it."""

    config: Path
    proc: subprocess.Popen[str]
    services: subprocess.Popen[str]
    api_url: str
    proxy_url: str
    lines: list[str]

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30)

    def through_proxy(self) -> httpx.Client:
        return httpx.Client(proxy=self.proxy_url, timeout=30)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.services.terminate()
        self.services.wait(10)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    home = tmp_path_factory.mktemp("dashboard")
    demo_services = DemoServices(home / "configs")
    config, services = demo_services.config, demo_services.proc
    proc = subprocess.Popen(
        [*proxy_hooks_command(), "run", "--config", str(config.parent), "--listen-port", "0",
         "--api", "127.0.0.1:0", "--events", str(home / "events.db"), "--set", f"confdir={home / 'conf'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=pump, daemon=True).start()

    def found(pattern: str) -> str | None:
        for line in list(lines):
            if match := re.search(pattern, line):
                return match.group(1)
        assert proc.poll() is None, "proxy-hooks run exited:\n" + "".join(lines)
        return None

    port = wait_for(lambda: found(r"proxy listening at 127\.0\.0\.1:(\d+)"), 30, "the proxy")
    api_url = wait_for(lambda: found(r"control API listening on (http://\S+)"), 30, "the API")
    run = DemoRun(config, proc, services, api_url, f"http://127.0.0.1:{port}", lines)
    yield run
    run.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Any, demo: DemoRun) -> Iterator[Page]:
    view = Page(browser, demo.api_url)
    yield view
    view.close_other_tabs()


class Page:
    """The browser at the dashboard, with waits that poll (never sleep)."""

    def __init__(self, driver: Any, base: str):
        self.driver = driver
        self.base = base

    def open(self, name: str) -> None:
        self.driver.get(f"{self.base}/ui/#/{name}")
        self.driver.refresh()  # a fresh page state, even when only the hash changed
        self.wait(lambda: self.driver.find_elements("css selector", f"main#page-{name}"), f"page {name}")

    def wait(self, predicate: Callable[[], Any], what: str) -> Any:
        return wait_for(predicate, UI_DEADLINE_S, f"{what} (page: {self.driver.current_url})")

    def find(self, css: str) -> Any:
        return self.wait(lambda: self._visible(css), css)

    def _visible(self, css: str) -> Any:
        found = [e for e in self.driver.find_elements("css selector", css) if e.is_displayed()]
        return found[0] if found else None

    def text(self, css: str, contains: str) -> str:
        """Waits until the element's text contains `contains`; returns the text."""

        def has() -> str | None:
            element = self._visible(css)
            text = element.text if element is not None else ""
            return text if contains in text else None

        return str(self.wait(has, f"{contains!r} in {css}"))

    def click(self, css: str) -> None:
        self.wait(lambda: (e := self._visible(css)) is not None and e.is_enabled(), f"{css} clickable")
        self.find(css).click()

    def fill(self, css: str, value: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def hook_ids(self, service: str) -> list[str]:
        rows = self.driver.find_elements("css selector", f"section[data-service={service}] tr[data-hook-id]")
        return [row.get_attribute("data-hook-id") for row in rows]

    def screenshot(self, name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))

    def close_other_tabs(self) -> None:
        handles = self.driver.window_handles
        for handle in handles[1:]:
            self.driver.switch_to.window(handle)
            self.driver.close()
        self.driver.switch_to.window(handles[0])


def api_hooks(demo: DemoRun, service: str = "auth") -> list[dict[str, Any]]:
    with demo.api() as api:
        hooks: list[dict[str, Any]] = api.get(f"/api/v1/containers/demo/proxy/hooks/{service}").json()[
            "data"
        ]["hooks"]
    return hooks


def set_enabled(demo: DemoRun, hook_id: str, enabled: bool) -> None:
    """Through the API (test set-up and clean-up, not what is tested)."""
    with demo.api() as api:
        response = api.get(f"{AUTH_HOOKS}/{hook_id}")
        hook = response.json()["data"]["hook"]
        body = {k: v for k, v in hook.items() if k not in ("id", "position", "created_at", "updated_at")}
        written = api.patch(
            f"{AUTH_HOOKS}/{hook_id}",
            json={**body, "enabled": enabled},
            headers={"If-Match": response.headers["ETag"]},
        )
        assert written.status_code == 200, written.text


def test_the_hooks_page_lists_each_service_in_evaluation_order(page: Page, demo: DemoRun) -> None:
    page.open("hooks")
    page.find(f"tr[data-hook-id='{BLOCK_DELETES}']")  # the list is in
    assert page.hook_ids("auth") == [h["id"] for h in api_hooks(demo, "auth")]
    assert page.hook_ids("billing") == [h["id"] for h in api_hooks(demo, "billing")]
    assert "/v1/users/**" in page.find(f"tr[data-hook-id='{BLOCK_DELETES}']").text
    page.screenshot("hooks")


def test_disabling_a_hook_stops_the_proxy_running_it(page: Page, demo: DemoRun) -> None:
    with demo.through_proxy() as proxy:
        assert proxy.delete("http://auth.demo.test/v1/users/42").status_code == 403
        page.open("hooks")
        row = f"tr[data-hook-id='{BLOCK_DELETES}']"
        page.click(f"{row} button.toggle")
        page.text(f"{row} td.state", "disabled")
        page.text("#hooks-notice", "Disabled")
        try:
            answer = proxy.delete("http://auth.demo.test/v1/users/42")
            assert answer.status_code == 200 and answer.json()["service"] == "auth"  # the upstream answered
            assert "x-proxy-hooks-hook" not in answer.headers
            page.click(f"{row} button.toggle")
            page.text(f"{row} td.state", "enabled")
            page.text("#hooks-notice", "Enabled")
            assert proxy.delete("http://auth.demo.test/v1/users/42").status_code == 403
        finally:
            set_enabled(demo, BLOCK_DELETES, True)


def test_moving_a_hook_changes_the_evaluation_order(page: Page, demo: DemoRun) -> None:
    page.open("hooks")
    before = page.wait(lambda: page.hook_ids("auth"), "the hooks listed")
    assert before == [LOGIN_TRACE, BLOCK_DELETES, ADD_HEADER, CHECK_PROFILE]
    page.click(f"tr[data-hook-id='{LOGIN_TRACE}'] button.down")
    moved = [BLOCK_DELETES, LOGIN_TRACE, ADD_HEADER, CHECK_PROFILE]
    page.wait(lambda: page.hook_ids("auth") == moved, "the new order")
    assert [h["id"] for h in api_hooks(demo)] == moved
    page.click(f"tr[data-hook-id='{LOGIN_TRACE}'] button.up")
    page.wait(lambda: page.hook_ids("auth") == before, "the order restored")
    assert [h["id"] for h in api_hooks(demo)] == before


def test_an_invalid_edit_shows_each_reason_beside_its_field_then_saves(page: Page, demo: DemoRun) -> None:
    page.open("hooks")
    page.click(f"tr[data-hook-id='{ADD_HEADER}'] button.edit")
    page.fill("#field-timeout", "0")
    page.fill("#field-match-path", "v1/**")
    page.click("#hook-save")
    assert "must be 1-30000 ms, got 0" in page.text(".field-error[data-field='timeout']", "30000")
    assert "must start with '/'" in page.text(".field-error[data-field='match.path']", "/")
    page.screenshot("hooks-edit-422")
    assert api_hooks(demo)[2]["timeout"] == 2000  # nothing was written
    page.fill("#field-timeout", "2500")
    page.fill("#field-match-path", "/v1/**")
    page.click("#hook-save")
    page.text("#hooks-notice", "Hook updated successfully")
    hook = api_hooks(demo)[2]
    assert hook["timeout"] == 2500 and hook["match"]["path"] == "/v1/**"
    assert hook["description"].startswith("JavaScript: add a header")  # the rest of the hook is kept
    with demo.through_proxy() as proxy:  # still the same hook, live
        echoed = proxy.get("http://auth.demo.test/v1/profile").json()
    assert echoed["headers"]["x-demo-hook"] == "add-header.js saw GET /v1/profile"


def test_a_write_that_lost_a_race_shows_the_fresh_version(page: Page, demo: DemoRun) -> None:
    driver = page.driver
    page.open("hooks")
    loaded = page.find("#hooks-version").text
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    page.open("hooks")
    page.click(f"tr[data-hook-id='{ADD_HEADER}'] button.toggle")  # the second tab wins
    page.text("#hooks-notice", "Disabled")
    try:
        driver.switch_to.window(first)  # still showing the version it loaded
        page.click(f"tr[data-hook-id='{ADD_HEADER}'] button.toggle")
        page.text("#conflict", "changed since you loaded them")
        assert page.find("#conflict-loaded").text == loaded
        current = page.find("#conflict-current").text
        assert current != loaded
        with demo.api() as api:
            assert api.get(AUTH_HOOKS).headers["ETag"] == current
        fresh = json.loads(page.find("#conflict-fresh").text)
        assert fresh["id"] == ADD_HEADER and fresh["enabled"] is False  # what the other tab wrote
        page.screenshot("hooks-412")
        assert api_hooks(demo)[2]["enabled"] is False  # the stale write did nothing
        page.click("#conflict-reload")
        page.text(f"tr[data-hook-id='{ADD_HEADER}'] td.state", "disabled")
        assert page.find("#hooks-version").text == current
    finally:
        set_enabled(demo, ADD_HEADER, True)


def test_a_live_event_arrives_and_opens_its_details(page: Page, demo: DemoRun) -> None:
    page.open("live")
    page.text("#live-status", "live")
    with demo.through_proxy() as proxy:
        proxy.delete("http://auth.demo.test/v1/users/live-1")
        row = page.wait(lambda: _event_row(page, "/v1/users/live-1"), "the live event")
        assert "blocked" in row.text
        row.click()
        detail = page.text("#event-detail", "deleting users is disabled in the demo")
        assert BLOCK_DELETES in detail
        # The demo's bash hook captures: its exchange opens with the event.
        page.text("#event-exchange", "DELETE http://auth.demo.test/v1/users/live-1")
        assert "403" in page.find("#event-exchange").text
        page.screenshot("live")
        page.click("#live-pause")
        page.text("#live-status", "paused")
        proxy.delete("http://auth.demo.test/v1/users/while-paused")
        page.click("#live-pause")  # resumes from the last event seen: nothing recorded meanwhile is lost
        page.wait(lambda: _event_row(page, "/v1/users/while-paused"), "the event recorded while paused")


def test_the_live_page_exports_the_captured_exchanges_as_har(
    page: Page, demo: DemoRun, downloads: Path
) -> None:
    with demo.through_proxy() as proxy:
        assert proxy.delete("http://auth.demo.test/v1/users/har-export").status_code == 403
    page.open("live")
    page.find("#filter-hook").send_keys(BLOCK_DELETES)
    page.click("#filter-apply")
    page.click("#live-har")
    har_file = downloads / "demo-events.har"
    wait_for(lambda: har_file.exists() and har_file.stat().st_size > 0, UI_DEADLINE_S, "the HAR download")
    entries = json.loads(har_file.read_text())["log"]["entries"]
    assert any(e["request"]["url"].endswith("/v1/users/har-export") for e in entries)
    assert {e["_proxyHooks"]["hook"] for e in entries} == {BLOCK_DELETES}


def test_live_filters_are_the_events_filters(page: Page, demo: DemoRun) -> None:
    page.open("live")
    page.find("#filter-service").send_keys("billing")
    page.click("#filter-apply")
    page.text("#live-status", "live")
    with demo.through_proxy() as proxy:
        proxy.get("http://auth.demo.test/v1/filtered-out")
        proxy.get("http://billing.demo.test/v1/invoices/demo")
    page.wait(lambda: _event_row(page, "/v1/invoices/demo"), "the billing event")
    assert _event_row(page, "/v1/filtered-out") is None  # recorded before the billing one, never shown


def _event_row(page: Page, path: str) -> Any:
    for row in page.driver.find_elements("css selector", "#live-events tr.event"):
        if path in row.text:
            return row
    return None


def test_stats_show_the_stores_figures(page: Page, demo: DemoRun) -> None:
    with demo.api() as api:
        written = api.get("/healthz").json()["data"]["events"]["written"]
        with demo.through_proxy() as proxy:
            assert proxy.delete("http://auth.demo.test/v1/users/stats").status_code == 403
        wait_for(
            lambda: api.get("/healthz").json()["data"]["events"]["written"] > written, 10, "the run recorded"
        )
        expected = api.get("/api/v1/containers/demo/proxy/stats?period=24h").json()["data"]
    page.open("stats")
    page.text("#stat-total", str(expected["totalEvents"]))
    assert page.find("#stat-block-rate").text == f"{expected['blockRate']} %"
    page.find("#stats-chart canvas")
    runs = page.find(f"#stats-hooks tr[data-hook-id='{BLOCK_DELETES}'] td.runs").text
    by_hook = {h["hookId"]: h["total"] for h in expected["hookBreakdown"]}
    assert int(runs) == by_hook[BLOCK_DELETES]
    page.screenshot("stats")
    page.click("button[data-period='30d']")
    page.wait(lambda: "active" in page.find("button[data-period='30d']").get_attribute("class"), "30d")


def test_explain_and_dry_run(page: Page, demo: DemoRun) -> None:
    page.open("debug")
    page.fill("#explain-url", "http://auth.demo.test/v1/users/42")
    page.find("#explain-method").send_keys("DELETE")
    page.click("#explain-run")
    page.text("#explain-winner", BLOCK_DELETES)
    assert page.find(f"#explain-result tr[data-hook-id='{BLOCK_DELETES}'] td.verdict").text == "runs"
    login = page.find(f"#explain-result tr[data-hook-id='{LOGIN_TRACE}']").text
    assert "method DELETE not in [POST]" in login
    page.find("#dryrun-hook").send_keys("auth #1")
    page.find("#dryrun-method").send_keys("DELETE")
    page.fill("#dryrun-path", "/v1/users/42")
    page.click("#dryrun-run")
    page.text("#dryrun-outcome", "blocked")
    page.screenshot("debug")
    page.fill("#dryrun-override", "/hooks/mock-invoice.py")  # another script of the folder
    page.click("#dryrun-run")
    page.text("#dryrun-outcome", "responded")
    assert "mock-invoice.py" in page.find("#dryrun-result").text


def test_overview_says_why_it_is_degraded(page: Page, demo: DemoRun) -> None:
    page.open("overview")
    page.text("#health-status", "ok")
    with demo.api() as api:
        etag = api.get(AUTH_HOOKS).headers["ETag"]
    page.text("#containers tr[data-container='demo'] td.version", etag)
    page.find("#events-written")
    page.screenshot("overview")
    config = demo.config
    good = config.read_text()
    try:
        broken = json.loads(good)
        broken["hooks"]["auth"][0]["timeout"] = 0
        config.write_text(json.dumps(broken))  # a hand edit the proxy refuses
        page.text("#health-status", "degraded")
        reason = page.text("#health-reasons", "hooks.auth[0].timeout")
        assert "demo.json of container demo is invalid" in reason and "must be 1-30000 ms" in reason
    finally:
        config.write_text(good)
    page.text("#health-status", "ok")


def test_with_a_token_the_page_asks_for_it_once(browser: Any, tmp_path: Path) -> None:
    config = Path(shutil.copytree(Path(__file__).parent.parent / "configs", tmp_path / "configs"))
    api = ApiProcess(config, "--token", "s3cret-token")
    try:
        page = Page(browser, api.url)
        browser.get(f"{api.url}/ui/")
        page.find("#login-form")
        page.fill("#token", "wrong")
        page.click("#login")
        page.text("#login-error", "refused")
        page.fill("#token", "s3cret-token")
        page.click("#login")
        page.text("#health-status", "ok")
        assert browser.execute_script("return sessionStorage.getItem('proxy-hooks-token')") == "s3cret-token"
        page.open("hooks")  # a reload: the tab keeps the token, no second prompt
        page.find(f"tr[data-hook-id='{LOGIN_TRACE}']")
        assert not browser.find_elements("css selector", "#login-form")
        assert "s3cret" not in browser.current_url
        page.click("#logout")
        page.find("#login-form")
    finally:
        browser.execute_script("sessionStorage.clear()")
        api.stop()
