"""Ways around a hook found by attacking the hardened proxy (each reproduced against real
frameworks' readings), now closed — through a real mitmdump, requests written byte for byte:

- a protocol switch (h2c or any other non-WebSocket 101) that would turn the connection into raw
  bytes no hook sees;
- a service's upstream reached under another spelling of its address, or by its own address;
- IPv6 host globs;
- method overrides the way frameworks read them (comma lists, `%5Fmethod`, form fields) and HEAD
  run by a GET handler;
- a header a hook or group reads given twice, and obs-fold.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from tests.harness import Mitmdump, Upstream, free_port, wait_for, write_json
from tests.rawhttp import RawResponse, send_raw

DENY = '#!/bin/bash\ncat >/dev/null\necho \'{"block": true, "reason": "closed by hook"}\'\n'


class SwitchingUpstream:
    """A hostile upstream: answers every request with `101 Switching Protocols` (h2c), then
    records whatever bytes arrive on the switched connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.received = bytearray()
        self.switched = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.received += data
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            self.switched += 1
            while chunk := conn.recv(65536):
                self.received += chunk

    def stop(self) -> None:
        self.sock.close()


def deny(path: str, method: object = "*", **extra: object) -> dict[str, object]:
    return {"match": {"method": method, "path": path}, "script": {"path": "/deny.sh"}, **extra}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    servers = {name: Upstream() for name in ("main", "solo", "shared")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def switching() -> Iterator[SwitchingUpstream]:
    server = SwitchingUpstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def v6_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstreams: dict[str, Upstream],
    switching: SwitchingUpstream,
    v6_port: int,
) -> Iterator[Mitmdump]:
    home = tmp_path_factory.mktemp("protocols")
    (home / "scripts").mkdir()
    (home / "scripts" / "deny.sh").write_text(DENY)
    doc = {
        "container": "protocols",
        "services": {
            "app": {
                "hosts": ["app.test", f"127.0.0.1:{upstreams['main'].port}"],
                "upstream": upstreams["main"].url,
            },
            "switch": {"hosts": ["switch.test"], "upstream": switching.url},
            "v6": {"hosts": [f"[::1]:{v6_port}"]},
            # No host names its upstream: a flow sent straight to it is still this service's.
            "solo": {"hosts": ["solo.test"], "upstream": upstreams["solo"].url},
            "shared_a": {"hosts": ["a.test"], "upstream": upstreams["shared"].url},
            "shared_b": {"hosts": ["b.test"], "upstream": upstreams["shared"].url},
        },
        "groups": {"ext": {"headers": {"x-from": "internet"}}},
        "hooks": {
            "app": [
                deny("/admin/**"),
                deny("/records/**", "DELETE"),
                deny("/reports/**", "GET"),
                deny("/internal/**", applies_to={"groups": ["ext"]}),
            ],
            "switch": [deny("/admin/**")],
            "v6": [deny("/**")],
            "solo": [deny("/admin/**")],
            "shared_a": [],
            "shared_b": [],
        },
    }
    process = Mitmdump(write_json(home / "protocols.json", doc), home / "confdir")
    yield process
    process.stop()


def marker() -> str:
    return uuid.uuid4().hex[:12]


def request(proxy: Mitmdump, line: str, *headers: str, body: bytes = b"") -> RawResponse:
    return send_raw(proxy.port, "\r\n".join([line, *headers]), body=body)


def seen(upstream: Upstream, mark: str) -> list[dict[str, object]]:
    return [r for r in upstream.requests if mark in str(r["raw_path"]) or mark in str(r["headers"])]


# --- protocol switches ---


@pytest.mark.parametrize("upgrade", ["H2C", "h2c, foo", "h2c", "foo/1", "websocket, h2c"])
def test_an_upgrade_other_than_websocket_is_not_asked_of_the_upstream(
    proxy: Mitmdump, upstreams: dict[str, Upstream], upgrade: str
) -> None:
    mark = marker()
    response = request(
        proxy,
        f"GET http://app.test/public/{mark} HTTP/1.1",
        "Host: app.test",
        "Connection: Upgrade, HTTP2-Settings, keep-alive",
        f"Upgrade: {upgrade}",
        "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
    )
    assert response.status == 200
    [got] = seen(upstreams["main"], mark)
    headers = got["headers"]
    assert isinstance(headers, dict)
    assert "upgrade" not in headers and "http2-settings" not in headers
    assert "upgrade" not in headers.get("connection", "").lower()


def test_an_upstream_that_switches_anyway_is_refused(proxy: Mitmdump, switching: SwitchingUpstream) -> None:
    """The hook judged `/public`; after a 101 the client would speak HTTP/2 (or anything) to the
    upstream with no hook in between: the 101 becomes a 502 and the connection closes."""
    import http.client

    before = switching.switched
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(b"GET http://switch.test/public HTTP/1.1\r\nHost: switch.test\r\n\r\n")
        response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        assert response.status == 502 and b"protocol switch refused" in body
        try:
            sock.sendall(b"DELETE /admin/after-switch HTTP/1.1\r\nHost: switch.test\r\n\r\n")
            assert sock.recv(4096) == b""  # closed
        except OSError:
            pass  # closed before we could send: as good
    wait_for(lambda: switching.switched == before + 1, 10, "the upstream's 101")
    assert b"after-switch" not in switching.received


# --- the same service under other names ---

SPELLINGS_OF_LOOPBACK = [
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.000.000.001",
    "[::ffff:127.0.0.1]",
]


@pytest.mark.parametrize("host", SPELLINGS_OF_LOOPBACK)
def test_an_ip_address_spelled_otherwise_is_the_same_service(
    proxy: Mitmdump, upstreams: dict[str, Upstream], host: str
) -> None:
    mark = marker()
    authority = f"{host}:{upstreams['main'].port}"
    response = request(proxy, f"GET http://{authority}/admin/{mark} HTTP/1.1", f"Host: {authority}")
    assert response.status == 403, response.body
    assert seen(upstreams["main"], mark) == []


def test_a_flow_sent_straight_to_a_services_upstream_is_that_services(
    proxy: Mitmdump, upstreams: dict[str, Upstream]
) -> None:
    mark = marker()
    authority = f"127.0.0.1:{upstreams['solo'].port}"
    response = request(proxy, f"DELETE http://{authority}/admin/{mark} HTTP/1.1", f"Host: {authority}")
    assert response.status == 403
    response = request(
        proxy, f"GET http://127.1:{upstreams['solo'].port}/admin/{mark} HTTP/1.1", "Host: solo.test"
    )
    assert response.status == 403
    assert seen(upstreams["solo"], mark) == []


def test_an_upstream_two_services_share_must_be_addressed_by_name(
    proxy: Mitmdump, upstreams: dict[str, Upstream]
) -> None:
    mark = marker()
    authority = f"127.0.0.1:{upstreams['shared'].port}"
    response = request(proxy, f"GET http://{authority}/{mark} HTTP/1.1", f"Host: {authority}")
    assert response.status == 421, response.body
    assert "protocols/shared_a or protocols/shared_b" in response.json()["reason"]
    assert request(proxy, f"GET http://{authority}/{mark} HTTP/1.1", "Host: a.test").status == 200


def test_ipv6_host_globs_match(proxy: Mitmdump, v6_port: int) -> None:
    for host in [f"[::1]:{v6_port}", f"[0:0::1]:{v6_port}", f"[0000::0001]:{v6_port}"]:
        response = request(proxy, f"GET http://{host}/x HTTP/1.1", f"Host: {host}")
        assert response.status == 403, (host, response.body)


# --- methods as frameworks read them ---


@pytest.mark.parametrize(
    ("line", "headers", "body"),
    [
        ("POST {u}", ["X-HTTP-Method-Override: DELETE, POST"], b""),
        ("POST {u}", ["X-HTTP-Method-Override: POST,DELETE"], b""),
        ("POST {u}?%5Fmethod=DELETE", [], b""),
        ("POST {u}?%5fmethod=delete&a=1", [], b""),
        ("POST {u}", ["Content-Type: application/x-www-form-urlencoded"], b"a=1&_method=DELETE"),
        ("POST {u}", ["Content-Type: application/x-www-form-urlencoded; charset=utf-8"], b"%5Fmethod=DELETE"),
        (
            "POST {u}",
            ["Content-Type: multipart/form-data; boundary=XX"],
            b'--XX\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--XX--\r\n',
        ),
    ],
)
def test_method_overrides_as_frameworks_read_them(
    proxy: Mitmdump, upstreams: dict[str, Upstream], line: str, headers: list[str], body: bytes
) -> None:
    mark = marker()
    first = line.format(u=f"http://app.test/records/{mark}") + " HTTP/1.1"
    response = request(proxy, first, "Host: app.test", *headers, body=body)
    assert response.status == 403, response.body
    assert seen(upstreams["main"], mark) == []


def test_head_is_judged_as_the_get_a_framework_runs_for_it(
    proxy: Mitmdump, upstreams: dict[str, Upstream]
) -> None:
    mark = marker()
    response = request(proxy, f"HEAD http://app.test/reports/{mark} HTTP/1.1", "Host: app.test")
    assert response.status == 403
    assert seen(upstreams["main"], mark) == []


# --- headers read one way here, another there ---


@pytest.mark.parametrize(
    "headers",
    [
        ["X-From: lan", "X-From: internet"],
        ["X-From: internet", "x-from: lan"],
        ["X-HTTP-Method-Override: POST", "X-HTTP-Method-Override: DELETE"],
    ],
)
def test_a_header_hooks_read_given_twice_is_refused(
    proxy: Mitmdump, upstreams: dict[str, Upstream], headers: list[str]
) -> None:
    mark = marker()
    response = request(proxy, f"POST http://app.test/internal/{mark} HTTP/1.1", "Host: app.test", *headers)
    assert response.status == 400 and "more than once" in response.json()["reason"]
    assert seen(upstreams["main"], mark) == []
    # Once, it is read as usual.
    assert (
        request(
            proxy, f"POST http://app.test/internal/{mark} HTTP/1.1", "Host: app.test", "X-From: internet"
        ).status
        == 403
    )


def test_a_folded_header_is_refused(proxy: Mitmdump, upstreams: dict[str, Upstream]) -> None:
    mark = marker()
    response = request(
        proxy,
        f"GET http://app.test/public/{mark} HTTP/1.1",
        "Host: app.test",
        "X-A: 1\r\n Transfer-Encoding: chunked",
    )
    # The proxy's own refusal (an upstream like aiohttp would refuse it too, but others unfold it).
    assert response.status == 400 and response.json()["error"] == "bad header", response.body
    assert seen(upstreams["main"], mark) == []


def test_a_header_no_hook_reads_may_repeat(proxy: Mitmdump, upstreams: dict[str, Upstream]) -> None:
    mark = marker()
    response = request(
        proxy, f"GET http://app.test/public/{mark} HTTP/1.1", "Host: app.test", "Accept: a", "Accept: b"
    )
    assert response.status == 200 and len(seen(upstreams["main"], mark)) == 1
