"""The control API under attack, one class of attack per section, against real processes on
loopback: a standalone `proxy-hooks api`, and (for the door: Host, Origin, JSON only) the API
served inside a real `mitmdump` with the addon.

The door is what a page in the user's browser meets: it can make the browser send requests to
127.0.0.1 through a DNS name it rebinds there (a foreign Host), cross-site (an Origin, or none
at all with `no-cors`), with the body types a form can send without a preflight. Every refused
request must change nothing: the hooks file keeps its bytes and no dry run is recorded.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon.event_store import SQLiteEventStore
from addon.launcher import mitmdump_args
from control_api.app import API_ROUTES
from control_api.openapi import build_document
from tests.conftest import DEMO, ApiProcess, write_container
from tests.harness import Mitmdump, hook, set_aside, set_hooks, wait_for
from tests.proxy_fixtures import home, proxy, upstream  # noqa: F401 - fixtures

NO_EVENT = "01hzzzzzzzzzzzzzzzzzzzzzzz"  # a well-formed event id no store holds
SEED_ID = "01hz8x9k2b3c4d5e6f7g8h9j0k"
DEPTH = 64


# --- the two targets ---


@dataclass
class Target:
    name: str
    url: str
    container: str
    hook_id: str
    hook_body: dict[str, Any]
    file: Path
    events_db: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def routes(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """Every route and method the API serves, each with a body that would succeed."""
        c = f"/api/v1/containers/{self.container}"
        h = f"{c}/proxy/hooks"
        one = f"{h}/auth/{self.hook_id}"
        return [
            ("GET", "/healthz", None),
            ("GET", "/api/v1/openapi.json", None),
            ("GET", "/api/v1/containers", None),
            ("GET", c, None),
            ("GET", h, None),
            ("PUT", h, {"hooks": {"auth": []}}),
            ("PATCH", h, {"items": [{"service": "auth", "hook": self.hook_body}]}),
            ("GET", f"{h}/auth", None),
            ("POST", f"{h}/auth", self.hook_body),
            ("PUT", f"{h}/auth", {"hooks": []}),
            ("DELETE", f"{h}/auth", None),
            ("GET", one, None),
            ("PATCH", one, self.hook_body),
            ("DELETE", one, None),
            ("PATCH", f"{one}/position", {"position": 0}),
            ("POST", f"{one}/test", {"path": "/t/x"}),
            ("GET", f"{one}/runs", None),
            ("POST", f"{c}/proxy/match", {"host": "auth.test", "path": "/t/x"}),
            ("GET", f"{c}/proxy/events", None),
            ("POST", f"{c}/proxy/events", {"message": "a note"}),
            ("GET", f"{c}/proxy/events/stream", None),
            ("GET", f"{c}/proxy/stats", None),
            ("GET", f"{c}/proxy/catalog", None),
            ("GET", "/api/v1/protocol", None),
            ("GET", f"{c}/proxy/events/{NO_EVENT}/exchange", None),
            ("GET", f"{c}/proxy/events.har", None),
            ("GET", "/metrics", None),
            ("GET", "/", None),
            ("GET", "/ui/index.html", None),  # the dashboard: no token, but the same door
        ]

    def body_routes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(m, p, b) for m, p, b in self.routes() if b is not None]

    def recorded(self, http: httpx.Client, kind: str = "dry_run") -> int:
        """How many events of `kind` the container has."""
        response = http.get(
            f"/api/v1/containers/{self.container}/proxy/events", params={"kind": kind, "limit": 500}
        )
        assert response.status_code == 200, response.text
        return len(response.json()["data"]["events"])


def _scratch() -> dict[str, Any]:
    doc = copy.deepcopy(DEMO)
    doc["hooks"]["auth"][0]["script"] = {"path": "/hooks/ok.sh"}
    return doc


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    path = write_container(tmp_path_factory.mktemp("hostile") / "demo.json", _scratch())
    (path.parent / "scripts" / "hooks" / "ok.sh").write_text("exit 0\n")
    process = ApiProcess(path)
    body = {"match": {"method": "GET", "path": "/x"}, "script": {"path": "/hooks/ok.sh"}}
    yield Target("api", process.url, "demo", SEED_ID, body, path, path.parent / "events.db")
    process.stop()


@pytest.fixture(scope="module")
def inproxy(proxy: Mitmdump, home: Path) -> Target:
    with proxy.api() as http:
        hook_id = str(set_hooks(http, "e2e", "auth", [hook("/t/**", "/act.sh")])["hooks"][0]["id"])
    body = {"match": {"method": "GET", "path": "/y"}, "script": {"path": "/act.sh"}}
    return Target(
        "mitmdump", proxy.api_url, "e2e", hook_id, body, home / "e2e.json", home / "confdir" / "events.db"
    )


@pytest.fixture(params=["api", "mitmdump"])
def target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue("standalone" if request.param == "api" else "inproxy")


def test_the_routes_here_are_every_route_of_the_api(standalone: Target) -> None:
    generic = {
        (
            m,
            re.sub(r"/demo(?=/|$)", "/{id}", p)
            .replace("/auth", "/{service}")
            .replace(SEED_ID, "{hookId}")
            .replace("/ui/index.html", "/ui/{asset}")
            .replace(NO_EVENT, "{eventId}"),
        )
        for m, p, _ in standalone.routes()
    }
    assert generic == {(route.method, route.path) for route in API_ROUTES}


# --- helpers ---


def send(
    http: httpx.Client,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, Any],
    content: bytes | None = None,
) -> httpx.Response:
    headers = {"If-Match": "*", **headers}
    if content is None and body is not None:
        content = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    return http.request(method, path, content=content, headers=headers)


def current_etag(target: Target, http: httpx.Client) -> dict[str, str]:
    """The real If-Match, for tests whose point is not If-Match: a refusal must then come from
    the rule under test, not from a precondition."""
    return {"If-Match": http.get(f"/api/v1/containers/{target.container}/proxy/hooks").headers["ETag"]}


def assert_no_cors(response: httpx.Response) -> None:
    leaked = [name for name in response.headers if name.lower().startswith("access-control-")]
    assert not leaked, leaked


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["statusCode"] == status and body["code"] == code, body
    assert set(body) <= {"statusCode", "error", "message", "code", "details"}
    assert_no_cors(response)
    return body


@pytest.fixture
def unchanged(target: Target) -> Iterator[Callable[[], None]]:
    """Yields nothing useful; afterwards checks the hooks file kept its bytes and that no dry run
    was recorded (a dry run made now is the barrier: the recorder writes in order), nor any note
    (notes are written before their answer)."""
    before = target.file.read_bytes()
    with target.client() as http:
        dry_runs = target.recorded(http)
        notes = target.recorded(http, "note")
    yield lambda: None
    assert target.file.read_bytes() == before, "a refused request changed the hooks file"
    with target.client() as http:
        assert target.recorded(http, "note") == notes, "a refused note was recorded"
    with target.client() as http:
        path = f"/api/v1/containers/{target.container}/proxy/hooks/auth/{target.hook_id}/test"
        assert http.post(path, json={"path": "/t/x"}).status_code == 200
        wait_for(lambda: target.recorded(http) >= dry_runs + 1, 10, "the barrier dry run to be recorded")
        assert target.recorded(http) == dry_runs + 1, "a refused dry run ran"


# --- 1. DNS rebinding: a Host that is not this API's → 421 before anything runs ---


def rebinding_hosts(port: int) -> list[str]:
    return [
        "attacker.example",
        f"attacker.example:{port}",
        f"localhost.attacker.example:{port}",
        f"127.0.0.1.nip.io:{port}",
        f"localhost:{port + 1}",  # the right name, the wrong port
        f"127.0.0.1:{port + 1}",
        "localhost",  # port 80
        "127.0.0.1",
        "[::1]",
        f"[::1]:{port + 1}",
        f"127.1:{port}",  # other spellings of loopback a resolver accepts
        f"0x7f000001:{port}",
        f"2130706433:{port}",
        f"0177.0.0.1:{port}",
        f"127.0.0.2:{port}",
        f"[0:0:0:0:0:0:0:1]:{port}",
        f"[::ffff:127.0.0.1]:{port}",
        f"0.0.0.0:{port}",
        f"localhost.:{port}",  # trailing dot
        f"127.0.0.1.:{port}",
        f"LOCALHOST:{port}",  # browsers send lowercase: this is no browser's spelling of ours
        f"Localhost:{port}",
        f"user@localhost:{port}",  # userinfo
        f"localhost:{port}@attacker.example",
        f"localhost:{port}:{port}",
        f"localhost:+{port}",
        f"localhost:{port}0",
        f"::1:{port}",
        "",
    ]


def test_foreign_hosts_are_421_on_every_route_and_nothing_runs(target: Target, unchanged: Any) -> None:
    with target.client() as http:
        for host in rebinding_hosts(target.port):
            for method, path, body in target.routes():
                response = send(http, method, path, body, {"Host": host})
                error = assert_error(response, 421, "MISDIRECTED")
                assert error["error"] == "Misdirected Request"
                assert f"Host {host!r}" in error["message"] and "--api-host" in error["message"]
                assert "ETag" not in response.headers  # nothing about the container was read


@pytest.mark.parametrize("spelling", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_the_listen_address_and_loopback_names_with_its_port_are_served(
    target: Target, spelling: str
) -> None:
    with target.client() as http:
        response = http.get("/healthz", headers={"Host": spelling.format(port=target.port)})
        assert response.status_code == 200, response.text
        assert_no_cors(response)


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_without_host_is_served_http_1_0(target: Target) -> None:
    """Only non-browser clients omit Host (browsers always send one)."""
    answer = _raw(target.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_two_host_headers_are_refused(target: Target) -> None:
    port = target.port
    answer = _raw(
        port, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: attacker.example\r\n\r\n".encode()
    )
    assert answer.split(b" ", 2)[1] in (b"400", b"421"), answer[:200]


def test_allowed_names_by_option(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    api = ApiProcess(path, "--api-host", "proxy.internal", "--api-host", "Other.Internal:81")
    try:
        with api.client() as http:
            for host in ("proxy.internal", "proxy.internal:9", f"proxy.internal:{api.url.rsplit(':', 1)[1]}",
                         "other.internal:81"):  # fmt: skip
                assert http.get("/healthz", headers={"Host": host}).status_code == 200, host
            for host in ("other.internal", "other.internal:82", "proxy.internal.attacker.example"):
                assert_error(http.get("/healthz", headers={"Host": host}), 421, "MISDIRECTED")
            origin = {"Origin": "http://proxy.internal:8443", "Host": "proxy.internal"}
            assert http.get("/healthz", headers=origin).status_code == 200
    finally:
        api.stop()


def test_a_malformed_api_host_is_refused_at_start(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    with pytest.raises(RuntimeError, match="NAME or NAME:PORT"):
        ApiProcess(path, "--api-host", "name:port")


def test_allowed_names_inside_mitmdump(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    proxy = Mitmdump(path, tmp_path / "confdir", "--set", "hooks_api_hosts=proxy.internal,other.internal:81")
    try:
        with proxy.api() as http:
            assert http.get("/healthz", headers={"Host": "proxy.internal:1"}).status_code == 200
            assert http.get("/healthz", headers={"Host": "other.internal:81"}).status_code == 200
            assert_error(http.get("/healthz", headers={"Host": "other.internal:1"}), 421, "MISDIRECTED")
    finally:
        proxy.stop()


def test_a_malformed_hooks_api_hosts_stops_mitmdump_with_the_reason(tmp_path: Path) -> None:
    path = write_container(tmp_path / "demo.json")
    with pytest.raises(RuntimeError, match=r"hooks_api_hosts: allowed API host must be NAME or NAME:PORT"):
        Mitmdump(path, tmp_path / "confdir", "--set", "hooks_api_hosts=bad:port")


def test_run_passes_api_hosts_to_mitmdump_once(tmp_path: Path) -> None:
    args = mitmdump_args(tmp_path / "c.json", "127.0.0.1", 8080, "127.0.0.1:8082", [], [],
                         api_hosts=["a.internal", "b.internal:81"])  # fmt: skip
    assert "hooks_api_hosts=a.internal,b.internal:81" in args
    mine = ["--set", "hooks_api_hosts=mine"]
    args = mitmdump_args(tmp_path / "c.json", "127.0.0.1", 8080, "127.0.0.1:8082", [], mine,
                         api_hosts=["a.internal"])  # fmt: skip
    assert [a for a in args if a.startswith("hooks_api_hosts=")] == ["hooks_api_hosts=mine"]


# --- 2. Cross-site: a foreign Origin → 403, no CORS ever, preflights refused ---


def foreign_origins(port: int) -> list[str]:
    return [
        "http://attacker.example",
        f"http://attacker.example:{port}",
        f"http://localhost.attacker.example:{port}",
        f"http://localhost:{port + 1}",
        f"http://127.0.0.1:{port + 1}",
        "http://localhost",
        f"ftp://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}/",
        f"http://user@127.0.0.1:{port}",
        "null",
        "",
        "file://",
    ]


def test_foreign_origins_are_403_on_every_route_and_nothing_runs(target: Target, unchanged: Any) -> None:
    with target.client() as http:
        for origin in foreign_origins(target.port):
            for method, path, body in target.routes():
                response = send(http, method, path, body, {"Origin": origin})
                error = assert_error(response, 403, "FORBIDDEN_ORIGIN")
                assert f"Origin {origin!r}" in error["message"]


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
def test_cross_site_fetches_are_403_even_without_origin(target: Target, unchanged: Any, site: str) -> None:
    """A `no-cors` GET (an <img> or <script>) sends no Origin; its Sec-Fetch-Site says where
    it comes from."""
    with target.client() as http:
        for method, path, body in target.routes():
            response = send(http, method, path, body, {"Sec-Fetch-Site": site})
            assert_error(response, 403, "FORBIDDEN_ORIGIN")


def test_same_origin_and_user_typed_requests_are_served(target: Target) -> None:
    with target.client() as http:
        for headers in (
            {"Origin": f"http://127.0.0.1:{target.port}"},
            {"Origin": f"http://localhost:{target.port}", "Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "none"},
        ):
            response = http.get("/healthz", headers=headers)
            assert response.status_code == 200, (headers, response.text)
            assert_no_cors(response)


def test_preflights_are_refused_without_cors_headers(target: Target) -> None:
    with target.client() as http:
        for method, path, _ in target.routes():
            for origin in ("http://attacker.example", f"http://127.0.0.1:{target.port}"):
                response = http.request(
                    "OPTIONS",
                    path,
                    headers={
                        "Origin": origin,
                        "Access-Control-Request-Method": method,
                        "Access-Control-Request-Headers": "content-type, if-match",
                    },
                )
                assert response.status_code in (403, 405), (path, origin, response.text)
                assert response.json()["statusCode"] == response.status_code
                assert_no_cors(response)


# --- 3. JSON only: a body that is not application/json → 415 (a form cannot send JSON) ---

NON_JSON = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,  # no Content-Type at all
    "application/json; charset=latin-1",
    "application/jsonp",
    "text/json",
]


def test_non_json_bodies_are_415_on_every_body_route_and_nothing_runs(target: Target, unchanged: Any) -> None:
    c = f"/api/v1/containers/{target.container}/proxy/hooks/auth"
    routes = [*target.body_routes(), ("DELETE", c, {}), ("DELETE", f"{c}/{target.hook_id}", {})]
    with target.client() as http:
        for content_type in NON_JSON:
            for method, path, body in routes:
                headers = {} if content_type is None else {"Content-Type": content_type}
                headers.update(current_etag(target, http))
                content = json.dumps(body).encode()
                response = send(http, method, path, None, headers, content)
                error = assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
                assert "application/json" in error["message"]
                # the form-encoded body a page can send without a preflight
                if content_type == "application/x-www-form-urlencoded":
                    form = send(http, method, path, None, headers, b"a=b")
                    assert_error(form, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_with_parameters_is_accepted(target: Target) -> None:
    path = f"/api/v1/containers/{target.container}/proxy/match"
    with target.client() as http:
        for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
            response = http.post(
                path, content=b'{"host": "auth.test"}', headers={"Content-Type": content_type}
            )
            assert response.status_code == 200, (content_type, response.text)


# --- 4. Malformed headers: never a 500 ---


@pytest.fixture(scope="module")
def with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    process = ApiProcess(write_container(tmp_path_factory.mktemp("token") / "demo.json"), "--token", "s3cret")
    yield process
    process.stop()


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer \xe9t\xe9",
        b"Bearer s3cr\xc3\xa9t",
        b"\xff\xfe\xfd",
        b"Bearer s3cret\xe9",
        "Bearer s3crét".encode(),
    ],
)
def test_non_ascii_authorization_is_401(with_token: ApiProcess, value: bytes) -> None:
    with with_token.client() as http:
        for path in ("/healthz", "/api/v1/containers/demo/proxy/hooks"):
            response = http.get(path, headers={"Authorization": value})
            error = assert_error(response, 401, "UNAUTHORIZED")
            assert error["message"] == "Missing or invalid bearer token"
        ok = http.get("/healthz", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_raw_latin1_authorization_is_401(with_token: ApiProcess) -> None:
    port = int(with_token.url.rsplit(":", 1)[1])
    answer = _raw(port, f"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n".encode()
                  + b"Authorization: Bearer \xe9\xe8\r\n\r\n")  # fmt: skip
    assert answer.split(b" ", 2)[1] == b"401", answer[:300]


def test_host_is_checked_before_the_token(with_token: ApiProcess) -> None:
    with with_token.client() as http:
        assert_error(http.get("/healthz", headers={"Host": "attacker.example"}), 421, "MISDIRECTED")


# --- 5. Nested JSON: a depth bound, 422 with the reason, never a RecursionError ---


def nested(levels: int) -> Any:
    """`levels` arrays inside each other (1: [])."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _deep_body(depth: int) -> bytes:
    """An object (1 level) holding `depth - 1` levels of arrays."""
    if depth > 500:  # json.dumps itself would recurse too deep
        return b'{"x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    return json.dumps({"x": nested(depth - 1)}).encode()


TOO_DEEP = [{"field": "body", "reason": f"nested deeper than {DEPTH} levels"}]


def test_nesting_at_the_bound_is_judged_normally_and_beyond_it_is_422(target: Target, unchanged: Any) -> None:
    with target.client() as http:
        headers = {"Content-Type": "application/json", **current_etag(target, http)}
        for method, path, _ in target.body_routes():
            at_bound = send(http, method, path, None, headers, _deep_body(DEPTH))
            assert at_bound.status_code == 422, at_bound.text  # the unknown field x, as usual
            assert at_bound.json()["details"] != TOO_DEEP
            for depth in (DEPTH + 1, 100_000):
                response = send(http, method, path, None, headers, _deep_body(depth))
                error = assert_error(response, 422, "VALIDATION_ERROR")
                assert error["details"] == TOO_DEEP


# --- 6. An unwritable hooks folder or file: 409 saying what to fix, the file intact ---


@pytest.mark.parametrize("what", ["folder", "file", "both"])
def test_unwritable_folder_or_file_is_409_and_the_file_is_intact(standalone: Target, what: str) -> None:
    """Tests run as root, for whom os.access always says yes: the store honours mode bits."""
    folder, file = standalone.file.parent, standalone.file
    before = file.read_bytes()
    modes = {folder: folder.stat().st_mode, file: file.stat().st_mode}
    if what in ("folder", "both"):
        folder.chmod(0o555)
    if what in ("file", "both"):
        file.chmod(0o444)
    try:
        with standalone.client() as http:
            writes = [
                (m, p, b)
                for m, p, b in standalone.routes()
                if m in ("PUT", "PATCH", "DELETE") or (m == "POST" and p.endswith("/auth"))
            ]
            assert len(writes) == 8
            for method, path, body in writes:
                response = send(http, method, path, body, current_etag(standalone, http))
                error = assert_error(response, 409, "READ_ONLY")
                assert "read-only" in error["message"] and "chmod u+w" in error["message"]
            assert http.get("/healthz").status_code == 200
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))
    assert file.read_bytes() == before


# --- 7. The events store: deleted, corrupt or unusable → 503 and healing, never a 500 ---

EVENT_ROUTES = ["/events", "/stats", "/hooks/auth/{hook}/runs"]


def _events_answers(target: Target, http: httpx.Client) -> list[httpx.Response]:
    base = f"/api/v1/containers/{target.container}/proxy"
    return [http.get(base + route.format(hook=target.hook_id)) for route in EVENT_ROUTES]


def _health(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/healthz")
    assert response.status_code == 200
    return dict(response.json()["data"])


def _remove_store(path: Path) -> None:
    """The journal files first, the database last: a recorder that notices the database gone
    then finds no stale journal beside the one it creates."""
    for leftover in reversed(set_aside(path.parent, path.name + "*")):
        if leftover.is_dir():
            leftover.rmdir()
        else:
            leftover.unlink()


def _corrupt_in_place(db: Path) -> None:
    """Garbage where the header and the first pages were, in the same file. The WAL is emptied
    first: a page the WAL still holds is read from there, not from the file, so garbage under it
    stays unseen (by SQLite and by any reader) until a checkpoint, and whether the last write
    left page 1 in the WAL is up to timing."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as checkpoint:
        busy, _, _ = checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0, "the WAL could not be emptied"
    with db.open("r+b") as f:
        f.write(b"this is not a database" * 200)


def _folder_in_place_of(db: Path) -> None:
    """A folder where the store should be: nothing can be created there. (A recorder may
    create the file again between the removal and the mkdir: then try again.)"""
    for _ in range(100):
        _remove_store(db)
        try:
            db.mkdir()
            return
        except FileExistsError:
            continue
    raise AssertionError("could not put a folder in place of the events store")


def _assert_unavailable(target: Target, http: httpx.Client, reason: str) -> None:
    for response in _events_answers(target, http):
        error = assert_error(response, 503, "EVENTS_UNAVAILABLE")
        assert reason in error["message"], error
    stream = http.get(f"/api/v1/containers/{target.container}/proxy/events/stream")
    assert_error(stream, 503, "EVENTS_UNAVAILABLE")
    note = http.post(f"/api/v1/containers/{target.container}/proxy/events", json={"message": "lost?"})
    assert_error(note, 503, "EVENTS_UNAVAILABLE")  # said, not silently dropped
    health = _health(http)
    assert health["status"] == "degraded" and reason in health["events"]["error"], health


def _available(target: Target, http: httpx.Client) -> bool:
    answers = _events_answers(target, http)
    assert all(a.status_code in (200, 503) for a in answers), [a.text for a in answers]
    return all(a.status_code == 200 for a in answers) and _health(http)["status"] == "ok"


@pytest.mark.parametrize("damage", ["deleted", "corrupt", "folder"])
def test_standalone_api_answers_503_while_the_store_is_unusable_and_recovers(
    standalone: Target, damage: str
) -> None:
    """The standalone API only reads: it never creates the file itself, so it waits for the
    proxy (here: the test) to create it again."""
    db = standalone.events_db
    with standalone.client() as http:
        assert _available(standalone, http)
        _remove_store(db)
        if damage == "corrupt":
            db.write_bytes(b"this is not a database" * 100)
        elif damage == "folder":
            _folder_in_place_of(db)
        reason = {"deleted": "unable to open", "corrupt": "not a database", "folder": "unable to open"}[
            damage
        ]
        _assert_unavailable(standalone, http, reason)
        assert not db.is_file() or damage == "corrupt"  # the reader created nothing
        _remove_store(db)
        SQLiteEventStore(db).create()
        wait_for(lambda: _available(standalone, http), 10, "the API to read the store again")


def _fire(proxy: Mitmdump, marker: str) -> None:
    with proxy.client() as client:
        response = client.get(f"http://auth.test/t/{marker}", headers={"x-act": "continue"})
        assert response.status_code == 200, response.text


def _recorded(target: Target, http: httpx.Client, marker: str) -> bool:
    response = http.get(f"/api/v1/containers/{target.container}/proxy/events", params={"kind": "run"})
    return response.status_code == 200 and any(
        marker in (e.get("path") or "") for e in response.json()["data"]["events"]
    )


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_recording_heals_after_the_store_is_deleted_or_corrupted(
    inproxy: Target, proxy: Mitmdump, damage: str
) -> None:
    db = inproxy.events_db
    with inproxy.client() as http:
        _fire(proxy, f"before-{damage}")
        wait_for(lambda: _recorded(inproxy, http, f"before-{damage}"), 10, "a run recorded before")
        if damage == "deleted":
            _remove_store(db)
        else:
            _corrupt_in_place(db)
        wait_for(lambda: _available(inproxy, http), 15, "events to be served again")
        _fire(proxy, f"after-{damage}")
        wait_for(lambda: _recorded(inproxy, http, f"after-{damage}"), 10, "a run recorded after")
        health = _health(http)["events"]
        word = "deleted or replaced" if damage == "deleted" else "corrupt"
        assert health["recovered"] >= 1 and word in health["last_recovery"], health
        if damage == "corrupt":
            assert set_aside(db.parent), "the corrupt store was not kept aside"


def test_an_unusable_store_degrades_health_with_the_reason_until_it_is_usable(
    inproxy: Target, proxy: Mitmdump
) -> None:
    db = inproxy.events_db
    with inproxy.client() as http:
        _folder_in_place_of(db)
        wait_for(lambda: _health(http)["status"] == "degraded", 15, "health to say degraded")
        _assert_unavailable(inproxy, http, "unable to open")
        assert str(db) in _health(http)["events"]["error"]
        dropped = _health(http)["events"]["dropped"]
        _fire(proxy, "while-unusable")  # the proxy serves on; the run is counted as dropped
        wait_for(lambda: _health(http)["events"]["dropped"] > dropped, 10, "the dropped run to be counted")
        db.rmdir()
        wait_for(lambda: _available(inproxy, http), 15, "the recorder to create the store")
        assert _health(http)["events"]["error"] is None
        _fire(proxy, "after-unusable")
        wait_for(lambda: _recorded(inproxy, http, "after-unusable"), 10, "a run recorded after")


# --- 8. If-Match: * is any current version, on every write verb ---


@pytest.mark.parametrize("verb", ["POST", "PUT", "PATCH", "PATCH position", "DELETE one", "DELETE all"])
def test_if_match_star_is_accepted_on_each_write(standalone: Target, verb: str) -> None:
    base = "/api/v1/containers/demo/proxy/hooks/auth"
    route = {
        "POST": ("POST", base, standalone.hook_body),
        "PUT": ("PUT", base, {"hooks": [standalone.hook_body]}),
        "PATCH": ("PATCH", f"{base}/{SEED_ID}", standalone.hook_body),
        "PATCH position": ("PATCH", f"{base}/{SEED_ID}/position", {"position": 0}),
        "DELETE one": ("DELETE", f"{base}/{SEED_ID}", None),
        "DELETE all": ("DELETE", base, None),
    }[verb]
    standalone.file.write_text(json.dumps(_scratch(), indent=2))
    with standalone.client() as http:
        version = http.get(base).json()["data"]["file_version"]
        method, path, body = route
        response = send(http, method, path, body, {"If-Match": "*"})
        assert response.status_code in (200, 201), response.text
        assert response.json()["data"]["file_version"] == version + 1
        assert json.loads(standalone.file.read_text())["file_version"] == version + 1


# --- 9. Everything else that used to be a 500 ---


def test_odd_query_path_and_header_values_are_4xx_never_5xx(standalone: Target) -> None:
    c = "/api/v1/containers/demo/proxy"
    with standalone.client() as http:
        cases = [
            (f"{c}/events", {"cursor": "²"}, {}),
            (f"{c}/events", {"cursor": "9" * 40}, {}),
            (f"{c}/events", {"since": "0001-01-01T00:00:00+01:00"}, {}),
            (f"{c}/events", {"until": "9999-12-31T23:59:59-01:00"}, {}),
            (f"{c}/events", {"limit": "١٠"}, {}),
            (f"{c}/events", {"outcome": "x" * 4000}, {}),
            (f"{c}/hooks/auth/{SEED_ID}/runs", {"last": "²"}, {}),
            (f"{c}/hooks/auth/{SEED_ID}/runs", {"last": "9" * 40}, {}),
            (f"{c}/events/stream", {}, {"Last-Event-ID": "²".encode()}),
            (f"{c}/events/stream", {}, {"Last-Event-ID": "9" * 40}),
            (f"{c}/events/stream", {}, {"Last-Event-ID": "-1"}),
            (f"{c}/events/stream", {"limit": "5"}, {}),  # not the stream's: it pages with Last-Event-ID
            (f"{c}/events/stream", {"cursor": "5"}, {}),
            (f"{c}/stats", {"period": "\x00"}, {}),
        ]
        for path, params, headers in cases:
            response = http.get(path, params=params, headers=headers)
            assert_error(response, 422, "VALIDATION_ERROR")
        for path in (
            "/api/v1/containers/%ff/proxy/hooks",
            "/api/v1/containers/demo/proxy/hooks/%ff%fe",
            f"/api/v1/containers/demo/proxy/hooks/auth/%c0%af{SEED_ID}",
            "/api/v1/containers/demo/proxy/hooks/%00/x/runs",
            "/api/v1/containers/demo/proxy/hooks/auth/%ED%A0%80/runs",
        ):
            response = http.get(path)  # runs are kept for deleted hooks: 200 and none
            assert response.status_code in (200, 404, 422), (path, response.text)
            assert response.json()["statusCode"] == response.status_code
        for host in ("auth.demo.test:²", "auth.demo.test:9" + "9" * 30, "[::1", ":"):
            response = http.post(f"{c}/match", json={"host": host})
            assert response.status_code in (200, 422), (host, response.text)
        huge = http.get(f"{c}/events", params={"service": "x" * 20_000})
        assert 400 <= huge.status_code < 500, huge.text


def test_the_openapi_document_says_all_this() -> None:
    document = build_document(API_ROUTES)
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert {"421", "403", "401"} <= set(responses), (method, path)
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                assert "415" in responses, (method, path)
            for parameter in operation["parameters"]:
                if parameter["name"] == "If-Match":
                    assert "*" in parameter["description"]
    stream = document["paths"]["/api/v1/containers/{id}/proxy/events/stream"]["get"]
    names = {p["name"] for p in stream["parameters"]}
    assert "limit" not in names and "cursor" not in names and "Last-Event-ID" in names
