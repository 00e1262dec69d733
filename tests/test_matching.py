"""The matcher on its own: globs, methods, headers, groups, order, hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.matching import (
    ClientView,
    CompiledContainer,
    FlowNames,
    Misdirected,
    RequestFacts,
    glob_to_regex,
    host_names,
    parse_host_header,
    resolve_service,
)
from addon.model import HooksFile
from addon.store import Snapshot


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/v1/login", "/v1/login", True),
        ("/v1/login", "/v1/login/", False),
        ("/v1/*", "/v1/users", True),
        ("/v1/*", "/v1/users/42", False),
        ("/v1/*", "/v1/", True),
        ("/v1/**", "/v1/users/42/x", True),
        ("/v1/**", "/v1", False),
        ("/*/users", "/v2/users", True),
        ("/**/users", "/a/b/c/users", True),
        ("/files/*.json", "/files/a.json", True),
        ("/files/*.json", "/files/a/b.json", False),
        ("/a.b", "/aXb", False),  # regex characters are literal
        ("/a+(b)", "/a+(b)", True),
    ],
)
def test_path_globs(pattern: str, path: str, matches: bool) -> None:
    assert (glob_to_regex(pattern).match(path) is not None) is matches


def compile_container(
    hooks: list[dict[str, object]], groups: dict[str, object] | None = None
) -> CompiledContainer:
    hooks_file = HooksFile.model_validate(
        {
            "container": "c",
            "services": {"svc": {"hosts": ["svc.test", "*.svc.test", "127.0.0.1:9001"]}},
            "groups": groups or {},
            "hooks": {"svc": [{"id": f"01hz8x9k2b3c4d5e6f7g8h9j{i:02d}", **h} for i, h in enumerate(hooks)]},
        }
    )
    return CompiledContainer.compile(Snapshot(Path("/tmp/c.json"), hooks_file))


def winner(container: CompiledContainer, **facts: object) -> int | None:
    request = RequestFacts(
        method=str(facts.get("method", "GET")),
        path=str(facts.get("path", "/")),
        headers=dict(facts.get("headers", {})),  # type: ignore[call-overload]
        client_address=str(facts.get("client", "127.0.0.1")),
        user=facts.get("user"),  # type: ignore[arg-type]
    )
    hook = container.first_match(container.services[0], ClientView(request, container.groups))
    return None if hook is None else hook.position


def h(path: str = "/**", method: object = "*", **extra: object) -> dict[str, object]:
    return {
        "match": {"method": method, "path": path, **extra.pop("match", {})},
        "script": {"path": "/x.py"},
        **extra,
    }  # type: ignore[dict-item]


def test_first_match_wins_in_position_order() -> None:
    container = compile_container([h("/a"), h("/**"), h("/a")])
    assert winner(container, path="/a") == 0
    assert winner(container, path="/b") == 1


def test_disabled_hooks_are_skipped_and_no_match_is_none() -> None:
    container = compile_container([h("/a", enabled=False), h("/a", method="POST")])
    assert winner(container, path="/a", method="post") == 1
    assert winner(container, path="/a", method="GET") is None


def test_method_lists_and_case() -> None:
    container = compile_container([h(method=["GET", "head"])])
    assert winner(container, method="HEAD") == 0
    assert winner(container, method="get") == 0
    assert winner(container, method="POST") is None


def test_headers_case_insensitive_names_exact_values_and_star() -> None:
    container = compile_container([h(match={"headers": {"X-Tenant": "acme", "x-any": "*"}})])
    assert winner(container, headers={"x-tenant": "acme", "x-any": ""}) == 0
    assert winner(container, headers={"x-tenant": "ACME", "x-any": "1"}) is None
    assert winner(container, headers={"x-tenant": "acme"}) is None


def test_groups_by_cidr_user_or_headers() -> None:
    groups = {
        "net": {"clients": ["10.0.0.0/8", "2001:db8::/32"]},
        "people": {"users": ["alice"]},
        "role": {"headers": {"x-role": "admin", "x-team": "*"}},
    }
    container = compile_container(
        [h("/net", applies_to={"groups": ["net"]}), h("/people", applies_to={"groups": ["people"]}),
         h("/role", applies_to={"groups": ["role"]})],
        groups,
    )  # fmt: skip
    assert winner(container, path="/net", client="10.1.2.3") == 0
    assert winner(container, path="/net", client="::ffff:10.1.2.3") == 0  # v4-mapped
    assert winner(container, path="/net", client="2001:db8::1") == 0
    assert winner(container, path="/net", client="192.168.0.1") is None
    assert winner(container, path="/people", user="alice") == 1
    assert winner(container, path="/people", user="bob") is None
    assert winner(container, path="/role", headers={"x-role": "admin", "x-team": "a"}) == 2
    assert winner(container, path="/role", headers={"x-role": "admin"}) is None


def _service(container: CompiledContainer, host: str, port: int, header: str | None = None) -> str | None:
    names = FlowNames(host_names(host, port), parse_host_header(header, port) if header else ())
    found = resolve_service([container], names)
    return None if found is None else found[1].name


def test_service_by_host_globs() -> None:
    container = compile_container([])
    assert _service(container, "svc.test", 80, "svc.test") == "svc"
    assert _service(container, "API.Svc.Test", 443) == "svc"
    assert _service(container, "api.svc.test.", 443) == "svc"  # a trailing dot is the same name
    assert _service(container, "127.0.0.1", 9001, "localhost:8080") == "svc"
    assert _service(container, "127.0.0.1", 9002) is None
    assert _service(container, "other.test", 80, "other.test") is None
    # Reverse mode with keep_host_header: the Host the client sent still finds the service
    # when the destination names none.
    assert _service(container, "10.0.0.1", 80, "svc.test:8080") == "svc"


def test_sources_naming_two_services_are_misdirected() -> None:
    container = compile_container([])
    other = CompiledContainer.compile(
        Snapshot(
            Path("/x/other.json"),
            HooksFile.model_validate({"container": "other", "services": {"open": {"hosts": ["open.test"]}}}),
        )
    )
    names = FlowNames(host_names("svc.test", 80), parse_host_header("open.test", 80))
    with pytest.raises(Misdirected) as caught:
        resolve_service([container, other], names)
    assert caught.value.named == {"destination": "c/svc", "host": "other/open"}
    sni = FlowNames(
        host_names("svc.test", 443), parse_host_header("svc.test", 443), host_names("open.test", 443)
    )
    with pytest.raises(Misdirected):
        resolve_service([container, other], sni)


# --- the index returns exactly what the plain scan returns ---

SEGMENTS = st.sampled_from(["a", "b", "ab", "v1", "x.json", "*", "**", "a*", "*b"])
REQUEST_SEGMENTS = st.sampled_from(["a", "b", "ab", "v1", "x.json", "abb", "", "z"])
PATTERNS = st.lists(SEGMENTS, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))
PATHS = st.lists(REQUEST_SEGMENTS, min_size=0, max_size=5).map(lambda parts: "/" + "/".join(parts))
METHOD_SPECS = st.one_of(
    st.just("*"), st.lists(st.sampled_from(["GET", "POST", "PUT"]), min_size=1, max_size=2)
)
HOOKS = st.lists(
    st.fixed_dictionaries(
        {
            "match": st.fixed_dictionaries(
                {
                    "method": METHOD_SPECS,
                    "path": PATTERNS,
                    "headers": st.sampled_from([{}, {"x-t": "1"}, {"x-t": "*"}]),
                }
            ),
            "enabled": st.booleans(),
            "applies_to": st.sampled_from([None, {"groups": ["g"]}]),
        }
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    hooks=HOOKS,
    path=PATHS,
    method=st.sampled_from(["GET", "POST", "PUT"]),
    headers=st.sampled_from([{}, {"x-t": "1"}, {"x-t": "2"}]),
    client=st.sampled_from(["10.0.0.1", "192.168.1.1"]),
)
def test_index_agrees_with_the_linear_scan(
    hooks: list[dict[str, object]], path: str, method: str, headers: dict[str, str], client: str
) -> None:
    specs = []
    for hook in hooks:
        spec = {**hook, "script": {"path": "/x.py"}}
        if spec["applies_to"] is None:
            del spec["applies_to"]
        specs.append(spec)
    container = compile_container(specs, {"g": {"clients": ["10.0.0.0/8"]}})
    service = container.services[0]
    view = ClientView(RequestFacts(method, path, headers, client), container.groups)
    indexed = container.first_match(service, view)
    linear = CompiledContainer.first_match_linear(service, view)
    assert (None if indexed is None else indexed.position) == (None if linear is None else linear.position)


def test_every_reading_of_a_request_is_matched() -> None:
    """Method overrides and `;parameters` are readings an upstream may act on: a hook matches
    if it matches any of them; one that matches none stays unmatched."""
    container = compile_container([h("/admin/**", method="DELETE"), h("/keys/*", method="*")])
    service = container.services[0]

    def first(method: str, path: str, headers: dict[str, str] | None = None, query: str = "") -> int | None:
        facts = RequestFacts.of(method, path, headers or {}, "127.0.0.1", None, query)
        found = container.first_match(service, ClientView(facts, container.groups))
        return None if found is None else found.position

    assert first("POST", "/admin/x") is None
    assert first("POST", "/admin/x", {"X-HTTP-Method-Override": "delete"}) == 0
    assert first("POST", "/admin/x", {"x-method-override": "DELETE"}) == 0
    assert first("POST", "/admin/x", query="a=1&_method=DELETE") == 0
    assert first("POST", "/admin/x", {"X-HTTP-Method-Override": "PUT"}) is None
    assert first("GET", "/keys;v=1/a") == 1
    assert first("GET", "/keys/a;v=1") == 1
    assert first("GET", "/ke;ys/a") is None
