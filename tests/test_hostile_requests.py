"""Attacks on the request path, by class, through a real mitmdump in front of a real upstream,
with requests written byte for byte (tests/rawhttp.py):

- path spellings, generated: every spelling of `/admin/<marker>` is blocked by the hook on
  `/admin/**` or refused with 400 — never seen by the upstream; allowed paths reach the upstream
  normalized, their query as sent;
- Host and SNI confusion: a flow whose destination, Host header and TLS server name name two
  services is a 421, never the service without hooks; malformed or repeated Hosts are a 400;
- streamed bodies and raw TCP cannot get past a hook.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Mitmdump, Upstream, wait_for, write_json
from tests.proxy_fixtures import upstream  # noqa: F401 - fixture
from tests.rawhttp import RawResponse, send_raw
from tests.spellings import classic_spellings, spellings

DENY = '#!/bin/bash\ncat >/dev/null\necho \'{"block": true, "reason": "closed by hook"}\'\n'


def deny(path: str) -> dict[str, object]:
    return {"match": {"method": "*", "path": path}, "script": {"path": "/deny.sh"}}


def container(upstream: Upstream) -> dict[str, object]:
    return {
        "container": "hostile",
        "services": {
            "locked": {"hosts": ["locked.test"], "upstream": upstream.url},
            "open": {"hosts": ["open.test"], "upstream": upstream.url},
            "app": {"hosts": ["app.test"], "upstream": upstream.url},
            # The upstream's own address, as reverse-mode configurations write it.
            "direct": {"hosts": [f"127.0.0.1:{upstream.port}"]},
        },
        "hooks": {
            "locked": [deny("/**")],
            "app": [
                deny("/admin/**"),
                deny("/admin"),
                {"match": {"method": "DELETE", "path": "/records/**"}, "script": {"path": "/deny.sh"}},
            ],
            "direct": [deny("/**")],
        },
    }


def start(tmp: Path, upstream: Upstream, *extra: str, connection_strategy: str = "lazy") -> Mitmdump:
    write_json(tmp / "hostile.json", container(upstream))
    (tmp / "scripts").mkdir(exist_ok=True)
    (tmp / "scripts" / "deny.sh").write_text(DENY)
    return Mitmdump(tmp / "hostile.json", tmp / "confdir", *extra, connection_strategy=connection_strategy)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Mitmdump]:
    process = start(tmp_path_factory.mktemp("hostile"), upstream)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def decoding_proxy(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Mitmdump]:
    process = start(tmp_path_factory.mktemp("decoding"), upstream, "--set", "hooks_encoded_slashes=decode")
    yield process
    process.stop()


def marker() -> str:
    return uuid.uuid4().hex[:12]


def request(proxy: Mitmdump, target: str, *headers: str, method: str = "DELETE") -> RawResponse:
    """`target` in absolute form (http://host/path), as a client talks to a proxy."""
    return send_raw(proxy.port, "\r\n".join([f"{method} {target} HTTP/1.1", *headers]))


def reached(upstream: Upstream, mark: str) -> list[str]:
    return [r["raw_path"] for r in upstream.requests if mark in r["raw_path"] or mark in str(r["headers"])]


# --- path spellings ---


def test_every_spelling_of_a_hooked_path_is_blocked_or_refused(proxy: Mitmdump, upstream: Upstream) -> None:
    mark = marker()
    plain = f"/admin/{mark}"
    tried = [*classic_spellings(plain), *spellings(plain, 150, seed=10)]
    outcomes = {}
    for spelled in tried:
        response = request(proxy, f"http://app.test{spelled}", "Host: app.test")
        outcomes[spelled] = response.status
        assert response.status in (403, 400), (spelled, response.status, response.body)
        if response.status == 403:
            assert response.json()["reason"] == "closed by hook"
        else:
            assert response.json()["error"] == "request path refused"
    assert reached(upstream, mark) == [], "a spelling of /admin/... reached the upstream"
    # Most spellings are simply canonical; only the ambiguous few are refused.
    assert sum(status == 403 for status in outcomes.values()) > len(tried) * 0.8


@pytest.mark.parametrize(
    "spelled",
    [
        "/admin%2F{m}",
        "/admin%2f{m}",
        "/admin%5C{m}",
        "/admin\\{m}",
        "/x%2F..%2Fadmin/{m}",
        "/x/..%2Fadmin/{m}",
    ],
)
def test_encoded_slashes_are_refused_or_decoded_never_passed(
    proxy: Mitmdump, decoding_proxy: Mitmdump, upstream: Upstream, spelled: str
) -> None:
    mark = marker()
    target = "http://app.test" + spelled.format(m=mark)
    refused = request(proxy, target, "Host: app.test")
    assert refused.status == 400 and "hooks_encoded_slashes=decode" in refused.json()["reason"]
    decoded = request(decoding_proxy, target, "Host: app.test")
    assert decoded.status == 403 and decoded.json()["reason"] == "closed by hook"
    assert reached(upstream, mark) == []


def test_the_proxys_own_api_reads_paths_as_the_proxy_does(proxy: Mitmdump, decoding_proxy: Mitmdump) -> None:
    """Explain and dry runs served inside a proxy follow its hooks_encoded_slashes."""
    body = {"host": "app.test", "method": "DELETE", "path": "/admin%2Fx"}
    match = "/api/v1/containers/hostile/proxy/match"
    with proxy.api() as api:
        refused = api.post(match, json=body).json()["data"]
    assert refused["refused"]["status"] == 400 and "encoded slash" in refused["refused"]["reason"]
    with decoding_proxy.api() as api:
        decoded = api.post(match, json=body).json()["data"]
    assert decoded["path"]["canonical"] == "/admin/x" and decoded["winner"]["position"] == 0


@pytest.mark.parametrize(
    ("spelled", "why"),
    [
        ("/../admin/{m}", "climbs above"),
        ("/%2e%2e/admin/{m}", "climbs above"),
        ("/adm%00in/{m}", "NUL"),
        ("/admin%0d%0aX-Injected:%20yes/{m}", "control character"),
        ("/adm%zzin/{m}", "invalid percent-encoding"),
        ("/adm%ffin/{m}", "not UTF-8"),
        ("/%c0%ae%c0%ae/admin/{m}", "not UTF-8"),
        ("/x/..;/admin/{m}", "dot segment with parameters"),
    ],
)
def test_unsafe_paths_are_refused_before_any_hook(
    proxy: Mitmdump, upstream: Upstream, spelled: str, why: str
) -> None:
    mark = marker()
    response = request(proxy, "http://app.test" + spelled.format(m=mark), "Host: app.test", method="GET")
    assert response.status == 400 and why in response.json()["reason"], response.body
    assert "x-proxy-hooks-hook" not in response.headers  # no hook ran
    assert reached(upstream, mark) == []


def test_the_upstream_gets_the_normalized_path_and_the_query_as_sent(
    proxy: Mitmdump, upstream: Upstream
) -> None:
    mark = marker()
    response = request(
        proxy,
        f"http://app.test//x/../%70ublic/./{mark}/?a=%2F..%2Fadmin&b=%zz",
        "Host: app.test",
        method="GET",
    )
    assert response.status == 200, response.body
    assert reached(upstream, mark) == [f"/public/{mark}/?a=%2F..%2Fadmin&b=%zz"]


def test_a_path_no_service_claims_is_left_alone(proxy: Mitmdump, upstream: Upstream) -> None:
    """Traffic for hosts no service has is not ours to judge or rewrite."""
    mark = marker()
    host = f"Host: localhost:{upstream.port}"
    response = request(proxy, f"http://localhost:{upstream.port}/x/../%70/{mark}", host, method="GET")
    assert response.status == 200
    assert reached(upstream, mark) == [f"/x/../%70/{mark}"]


@pytest.mark.parametrize(
    "spelled",
    ["/admin;jsessionid=1/{m}", "/admin;/{m}", "/%61dmin;a=b/./{m}", "/admin;x=%3B/{m}", "/x;y/../admin/{m}"],
)
def test_path_parameters_do_not_hide_a_path(proxy: Mitmdump, upstream: Upstream, spelled: str) -> None:
    """Tomcat and Spring drop `;parameters` from segments: `/admin;x/y` is `/admin/y` to them."""
    mark = marker()
    response = request(proxy, "http://app.test" + spelled.format(m=mark), "Host: app.test", method="GET")
    assert response.status == 403, response.body
    assert reached(upstream, mark) == []


OVERRIDES = [
    "X-HTTP-Method-Override: DELETE",
    "x-http-method-override: delete",
    "X-HTTP-Method: Delete",
    "X-Method-Override: DELETE",
]


@pytest.mark.parametrize("override", OVERRIDES)
def test_a_method_override_is_a_method(proxy: Mitmdump, upstream: Upstream, override: str) -> None:
    """Frameworks that honour an override act on a POST as the DELETE the hook is for."""
    mark = marker()
    response = request(proxy, f"http://app.test/records/{mark}", "Host: app.test", override, method="POST")
    assert response.status == 403, response.body
    assert reached(upstream, mark) == []


def test_a_method_override_parameter_is_a_method(proxy: Mitmdump, upstream: Upstream) -> None:
    mark = marker()
    for query in ["_method=DELETE", "a=1&_method=delete", "_method=%44ELETE"]:
        target = f"http://app.test/records/{mark}?{query}"
        assert request(proxy, target, "Host: app.test", method="POST").status == 403, query
    assert reached(upstream, mark) == []
    # Without an override a POST is not the hook's business.
    assert request(proxy, f"http://app.test/records/{mark}", "Host: app.test", method="POST").status == 200


def test_the_proxys_own_answer_to_head_has_no_body(proxy: Mitmdump, upstream: Upstream) -> None:
    """A 403 (or 400, 421) body after a HEAD would be read as the next response on the
    connection: two pipelined requests must come back as exactly two responses."""
    import http.client
    import socket

    mark = marker()
    first = f"HEAD http://app.test/admin/{mark} HTTP/1.1\r\nHost: app.test\r\n\r\n"
    second = f"GET http://app.test/public/{mark} HTTP/1.1\r\nHost: app.test\r\n\r\n"
    refused = f"HEAD http://app.test/%2e%2e/{mark} HTTP/1.1\r\nHost: app.test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall((first + refused + second).encode())
        statuses = []
        for method in ("HEAD", "HEAD", "GET"):
            response = http.client.HTTPResponse(sock, method=method)  # type: ignore[arg-type]
            response.begin()
            body = response.read()
            statuses.append((response.status, int(response.getheader("content-length") or 0) > 0, body[:20]))
    assert statuses[0][:2] == (403, True) and statuses[0][2] == b""
    assert statuses[1][:2] == (400, True) and statuses[1][2] == b""
    assert statuses[2][0] == 200 and statuses[2][2].startswith(b'{"upstream": true')
    assert reached(upstream, mark) == [f"/public/{mark}"]


# --- Host and SNI confusion ---

OPEN_NAMES = ["open.test", "OPEN.test", "open.test.", "open.test:80", "Open.Test.:80"]


@pytest.mark.parametrize("host", OPEN_NAMES)
def test_a_host_header_naming_another_service_is_misdirected(
    proxy: Mitmdump, upstream: Upstream, host: str
) -> None:
    mark = marker()
    response = request(proxy, f"http://locked.test/{mark}", f"Host: {host}", method="GET")
    assert response.status == 421, response.body
    body = response.json()
    assert body["services"] == {"destination": "hostile/locked", "host": "hostile/open"}
    # And the other way round: an open destination with the locked service's Host.
    response = request(proxy, f"http://{host}/{mark}", "Host: locked.test", method="GET")
    assert response.status == 421 and body["error"].startswith("misdirected request")
    assert reached(upstream, mark) == []


def test_a_host_no_service_has_does_not_unhook_the_destination(proxy: Mitmdump, upstream: Upstream) -> None:
    mark = marker()
    for host in ["unknown.test", "127.0.0.1", f"localhost:{upstream.port}"]:
        response = request(proxy, f"http://locked.test/{mark}", f"Host: {host}", method="GET")
        assert response.status == 403, (host, response.body)
    # A destination no service has, with a hooked service's Host: that service's hooks run.
    response = request(proxy, f"http://unknown.test/{mark}", "Host: locked.test", method="GET")
    assert response.status == 403
    assert reached(upstream, mark) == []


@pytest.mark.parametrize(
    "headers",
    [
        ["Host: locked.test", "Host: open.test"],
        ["Host: open.test", "Host: locked.test"],
        ["Host: locked.test", "Host: locked.test"],
        ["Host: locked.test@open.test"],
        ["Host: open.test/x"],
        ["Host: locked.test:99999"],
        ["Host: locked.test:80:80"],
    ],
    ids=lambda h: "+".join(h),
)
def test_repeated_or_malformed_hosts_are_refused(
    proxy: Mitmdump, upstream: Upstream, headers: list[str]
) -> None:
    mark = marker()
    response = request(proxy, f"http://locked.test/{mark}", *headers, method="GET")
    assert response.status == 400 and response.json()["error"] == "bad Host header", response.body
    assert reached(upstream, mark) == []


@pytest.mark.parametrize(
    ("tunnel", "sni", "host"),
    [
        ("locked.test:443", "open.test", "locked.test"),
        ("open.test:443", "locked.test", "open.test"),
        ("locked.test:443", "locked.test", "open.test"),
        ("unknown.test:443", "locked.test", "open.test"),
    ],
)
def test_tls_server_name_naming_another_service_is_misdirected(
    proxy: Mitmdump, upstream: Upstream, tunnel: str, sni: str, host: str
) -> None:
    mark = marker()
    response = send_raw(
        proxy.port, f"GET /{mark} HTTP/1.1\r\nHost: {host}", tunnel=tunnel, sni=sni, cafile=proxy.ca_cert
    )
    assert response.status == 421, response.body
    assert reached(upstream, mark) == []


def test_tls_with_agreeing_names_is_hooked(proxy: Mitmdump, upstream: Upstream) -> None:
    mark = marker()
    response = send_raw(
        proxy.port,
        f"GET /{mark} HTTP/1.1\r\nHost: locked.test",
        tunnel="locked.test:443",
        sni="locked.test",
        cafile=proxy.ca_cert,
    )
    assert response.status == 403
    response = send_raw(
        proxy.port,
        f"GET /{mark} HTTP/1.1\r\nHost: open.test",
        tunnel="open.test:443",
        sni="open.test",
        cafile=proxy.ca_cert,
    )
    assert response.status == 200 and reached(upstream, mark) == [f"/{mark}"]


# --- bodies and raw bytes ---


def test_streaming_bodies_past_hooks_is_refused(tmp_path: Path, upstream: Upstream) -> None:
    """mitmproxy streams a body past `stream_large_bodies` to the upstream before the `request`
    hook runs (and turns streaming back on mid-body): the addon refuses that option at start-up
    rather than let bodies past the hooks."""
    with pytest.raises(RuntimeError) as caught:
        start(tmp_path, upstream, "--set", "stream_large_bodies=1k")
    assert "stream_large_bodies cannot be used with proxy-hooks" in str(caught.value)


@pytest.fixture(scope="module")
def eager_proxy(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Mitmdump]:
    """Server connections opened at CONNECT time, before any bytes of the tunnel are seen."""
    process = start(tmp_path_factory.mktemp("eager"), upstream, connection_strategy="eager")
    yield process
    process.stop()


# What mitmproxy relays as raw TCP inside a tunnel, while an HTTP server reads a request.
NOT_HTTP_TO_MITMPROXY = {
    "blank lines first": ["\r\n\r\nGET /{m} HTTP/1.1\r\nHost: {t}\r\n\r\n"],
    "request line split": ["GET /{m} HTTP/1.1", "\r\nHost: {t}\r\n\r\n"],
    "method alone first": ["GET", " /{m} HTTP/1.1\r\nHost: {t}\r\n\r\n"],
}


@pytest.mark.parametrize("which", ["lazy", "eager"])
@pytest.mark.parametrize("parts", NOT_HTTP_TO_MITMPROXY.values(), ids=list(NOT_HTTP_TO_MITMPROXY))
def test_bytes_that_are_not_http_never_reach_a_service(
    proxy: Mitmdump, eager_proxy: Mitmdump, upstream: Upstream, which: str, parts: list[str]
) -> None:
    """Inside a CONNECT tunnel, mitmproxy relays what it does not take for HTTP as raw TCP;
    to a service's host the tunnel is closed instead, its server side open (eager) or not."""
    import http.client
    import socket

    mark = marker()
    target = f"127.0.0.1:{upstream.port}"  # the `direct` service's host
    chosen = proxy if which == "lazy" else eager_proxy
    with socket.create_connection(("127.0.0.1", chosen.port), timeout=30) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        connected = http.client.HTTPResponse(sock, method="CONNECT")  # type: ignore[arg-type]
        connected.begin()
        assert connected.status == 200
        for part in parts:
            with contextlib.suppress(OSError):  # the proxy may have closed already
                sock.sendall(part.format(m=mark, t=target).encode())
        assert connected.fp.read() == b""  # closed by the proxy, nothing relayed back
    assert reached(upstream, mark) == []
    wait_for(lambda: "closed a tunnel to 127.0.0.1" in chosen.output(), 10, "the proxy to log why")
