"""Cached verdicts (issue 13, item 3), through a real mitmdump in front of a real upstream: hits
and misses by each `vary` element, the key on the canonical path and on every method an upstream
may act on, expiry, invalidation on a hook edit, a script edit and a new file version, failures
never cached, a reused verdict applied exactly as the original, `cached` in events and the hit
rate in stats. Plus the cache alone, with its own clock, for expiry and the LRU bound."""

from __future__ import annotations

import asyncio
import base64
import http.client
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from addon import verdict_cache
from addon.engine import Verdict
from addon.matching import CompiledHook, RequestFacts
from addon.model import Hook
from addon.protocol import ScriptAnswer
from addon.verdict_cache import CacheRequest, VerdictCache
from tests.harness import Mitmdump, Upstream, hook, set_hooks, wait_for
from tests.proxy_fixtures import api, home, upstream  # noqa: F401 - fixtures (with this module's proxy)

EVENTS = "/api/v1/containers/e2e/proxy/events"
HOOKS = "/api/v1/containers/e2e/proxy/hooks"
LONG_TTL = 3_600_000


@pytest.fixture(scope="module")
def proxy(home: Path, upstream: Upstream) -> Iterator[Mitmdump]:
    # proxyauth=any: every client names a user (any password), so `user` can vary.
    process = Mitmdump(home / "e2e.json", home / "confdir", "--set", "proxyauth=any")
    yield process
    process.stop()


def cached_hook(
    api: httpx.Client, vary: list[str] | None = None, ttl_ms: int = LONG_TTL, **extra: Any
) -> str:
    cache: dict[str, Any] = {"ttl_ms": ttl_ms, **({} if vary is None else {"vary": vary})}
    spec = hook("/c/**", "/cache_probe.py", cache=cache, **extra)
    return str(set_hooks(api, "e2e", "auth", [spec])["hooks"][0]["id"])


def send(
    proxy: Mitmdump,
    upstream: Upstream,
    path: str = "/c/x",
    method: str = "GET",
    user: str = "alice",
    source: str = "127.0.0.1",
    **headers: str,
) -> str:
    """One request through the proxy, from `source`, as proxy user `user`; the run id the
    upstream saw (the verdict's x-run)."""
    marker = uuid.uuid4().hex
    credentials = base64.b64encode(f"{user}:pw".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30, source_address=(source, 0))
    try:
        all_headers = {"x-marker": marker, "proxy-authorization": f"Basic {credentials}", **headers}
        connection.request(method, f"http://auth.test{path}", headers=all_headers)
        response = connection.getresponse()
        assert response.status == 200, response.read()
    finally:
        connection.close()
    (seen,) = upstream.seen(marker)
    return str(seen["headers"]["x-run"])


def authed(proxy: Mitmdump) -> httpx.Client:
    return httpx.Client(proxy=proxy.proxy_url.replace("http://", "http://alice:pw@"), timeout=30)


def runs(api: httpx.Client, hook_id: str) -> list[dict[str, Any]]:
    found = api.get(EVENTS, params={"hookId": hook_id, "limit": 500}).json()["data"]["events"]
    return list(reversed(found))  # oldest first


def wait_runs(api: httpx.Client, hook_id: str, count: int) -> list[dict[str, Any]]:
    wait_for(lambda: len(runs(api, hook_id)) >= count, 10, f"{count} events")
    return runs(api, hook_id)


def test_a_repeated_request_gets_the_earlier_verdict_applied_the_same(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream
) -> None:
    hook_id = cached_hook(api)
    first = send(proxy, upstream)
    assert send(proxy, upstream) == first  # the same x-run: the first run's answer, reapplied
    assert send(proxy, upstream, path="/c/y") != first
    events = wait_runs(api, hook_id, 3)
    assert [(e["outcome"], e["cached"]) for e in events] == [
        ("modified", False),
        ("modified", True),
        ("modified", False),
    ]
    assert events[1]["exit_code"] is None and events[1]["changes"] == events[0]["changes"]
    stats = api.get("/api/v1/containers/e2e/proxy/stats").json()["data"]
    (row,) = [h for h in stats["hookBreakdown"] if h["hookId"] == hook_id]
    assert (row["total"], row["cached"], row["cacheHitRate"]) == (3, 1, 33.33)
    metrics = api.get("/metrics")
    assert metrics.status_code == 200, metrics.text
    hits = [
        sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
        if sample.name == "proxy_hooks_cache_hits_total" and sample.labels.get("hook") == hook_id
    ]
    assert hits == [1.0]


# (vary, two requests that differ only in that element)
DIFFERENT: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "method": ({"method": "GET"}, {"method": "POST"}),
    "path": ({"path": "/c/x"}, {"path": "/c/y"}),
    "query": ({"path": "/c/x?a=1"}, {"path": "/c/x?a=2"}),
    "client": ({"source": "127.0.0.1"}, {"source": "127.0.0.2"}),
    "user": ({"user": "alice"}, {"user": "bob"}),
    "header:x-tenant": ({"x-tenant": "acme"}, {"x-tenant": "globex"}),
}


@pytest.mark.parametrize("element", list(DIFFERENT))
def test_each_vary_element_tells_requests_apart(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream, element: str
) -> None:
    one, other = DIFFERENT[element]
    cached_hook(api, vary=[element])
    first = send(proxy, upstream, **one)
    assert send(proxy, upstream, **one) == first  # equal in `element`: a hit
    assert send(proxy, upstream, **other) != first  # different in it: a run of its own
    # What `vary` leaves out does not tell requests apart (the author said so).
    for name, (_, unlisted) in DIFFERENT.items():
        if name != element:
            assert send(proxy, upstream, **{**unlisted, **one}) == first, name


def test_a_header_varies_by_every_value(proxy: Mitmdump, api: httpx.Client, upstream: Upstream) -> None:
    cached_hook(api, vary=["header:X-Tenant"])
    absent = send(proxy, upstream)
    assert send(proxy, upstream) == absent
    assert send(proxy, upstream, **{"x-tenant": ""}) != absent  # present and empty is not absent


def test_the_key_is_the_canonical_path(proxy: Mitmdump, api: httpx.Client, upstream: Upstream) -> None:
    cached_hook(api, vary=["path"])
    first = send(proxy, upstream, path="/c/x")
    assert send(proxy, upstream, path="/c//./x") == first
    assert send(proxy, upstream, path="/c/%78") == first


def test_a_method_override_is_not_the_same_method(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream
) -> None:
    """A pass cached for GET /c/x must not let through a GET an upstream would run as DELETE."""
    cached_hook(api, vary=["method", "path"])
    first = send(proxy, upstream)
    assert send(proxy, upstream, **{"x-http-method-override": "DELETE"}) != first
    assert send(proxy, upstream, path="/c/x?_method=DELETE") != first


def test_a_blocked_verdict_is_reused_with_its_reason(proxy: Mitmdump, api: httpx.Client) -> None:
    hook_id = cached_hook(api)
    with authed(proxy) as http:
        first = http.get("http://auth.test/c/b", headers={"x-act": "block"})
        second = http.get("http://auth.test/c/b", headers={"x-act": "block"})
    assert first.status_code == second.status_code == 403
    assert first.json() == second.json() and "run " in first.json()["reason"]
    events = wait_runs(api, hook_id, 2)
    assert [(e["outcome"], e["cached"]) for e in events] == [("blocked", False), ("blocked", True)]


def test_failures_are_never_cached(proxy: Mitmdump, api: httpx.Client) -> None:
    hook_id = cached_hook(api, failure_mode="closed")
    with authed(proxy) as http:
        statuses = [http.get("http://auth.test/c/f", headers={"x-act": "fail"}).status_code for _ in range(3)]
    assert statuses == [502, 502, 502]
    events = wait_runs(api, hook_id, 3)
    assert [(e["outcome"], e["cached"]) for e in events] == [("failed", False)] * 3
    assert len({e["stderr"] for e in events}) == 3  # three runs of the script


def test_an_entry_expires(proxy: Mitmdump, api: httpx.Client, upstream: Upstream) -> None:
    cached_hook(api, ttl_ms=200)
    first = send(proxy, upstream)
    wait_for(lambda: send(proxy, upstream) != first, 10, "the entry to expire")


def test_a_hook_edit_drops_its_entries(proxy: Mitmdump, api: httpx.Client, upstream: Upstream) -> None:
    hook_id = cached_hook(api)
    first = send(proxy, upstream)
    url = f"{HOOKS}/auth/{hook_id}"
    current = api.get(url)
    body = {**current.json()["data"]["hook"], "description": "edited"}
    assert api.patch(url, json=body, headers={"If-Match": current.headers["ETag"]}).status_code == 200
    assert send(proxy, upstream) != first


def test_a_script_edit_drops_its_entries(
    proxy: Mitmdump, api: httpx.Client, upstream: Upstream, home: Path
) -> None:
    cached_hook(api)
    first = send(proxy, upstream)
    script = home / "scripts" / "cache_probe.py"
    script.write_text(script.read_text() + "# edited\n")
    assert send(proxy, upstream) != first


def test_a_new_file_version_drops_its_entries(proxy: Mitmdump, api: httpx.Client, upstream: Upstream) -> None:
    cached_hook(api)
    first = send(proxy, upstream)
    set_hooks(api, "e2e", "billing", [])  # another service's hooks: a new file version
    assert send(proxy, upstream) != first


@pytest.mark.parametrize(
    ("cache", "reason"),
    [
        ({"ttl_ms": 0}, "cache.ttl_ms"),
        ({"ttl_ms": 3_600_001}, "cache.ttl_ms"),
        (
            {"ttl_ms": 10, "vary": ["body"]},
            "must be one of method, path, query, client, user or header:<name>",
        ),
        ({"ttl_ms": 10, "vary": ["path", "path"]}, "must not repeat a name"),
    ],
)
def test_cache_settings_are_checked(api: httpx.Client, cache: dict[str, Any], reason: str) -> None:
    url = f"{HOOKS}/auth"
    etag = api.get(url).headers["ETag"]
    response = api.post(url, json=hook("/c/**", "/cache_probe.py", cache=cache), headers={"If-Match": etag})
    assert response.status_code == 422 and reason in response.text, response.text


# --- the cache alone ---


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _hook(tmp_path: Path, ttl_ms: int = 1000) -> CompiledHook:
    (tmp_path / "h.py").write_text("")
    spec = Hook.model_validate(
        {
            "id": "01hz8x9k2b3c4d5e6f7g8h9j0k",
            "match": {"method": "*", "path": "/**"},
            "script": {"path": "/h.py"},
            "cache": {"ttl_ms": ttl_ms},
        }
    )
    return CompiledHook.compile(spec, 0)


def _event(path: str) -> CacheRequest:
    return CacheRequest("c", "request", path.partition("?")[2], lambda: [])


def _facts(path: str) -> RequestFacts:
    return RequestFacts.of("GET", path, {}, "127.0.0.1", None)


def test_expiry_and_the_lru_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdict_cache, "MAX_ENTRIES_PER_HOOK", 2)
    clock = Clock()
    cache = VerdictCache(clock)
    compiled = _hook(tmp_path)
    ran: list[str] = []

    def lookup(path: str) -> Verdict:
        async def run() -> Verdict:
            ran.append(path)
            return Verdict("continued", ScriptAnswer())

        return asyncio.run(cache.run(compiled, _facts(path), _event(path), 1, tmp_path, run))

    assert not lookup("/a").cached and lookup("/a").cached
    clock.now = 0.999
    assert lookup("/a").cached
    clock.now = 1.0  # ttl 1000 ms: expired
    assert not lookup("/a").cached
    lookup("/b")
    lookup("/c")  # a third key: the least recently used (/a) goes
    assert cache.entries("c", compiled.id) == 2
    assert not lookup("/a").cached
    assert ran == ["/a", "/a", "/b", "/c", "/a"]
