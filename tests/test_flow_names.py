"""What a flow says about where it goes (addon/flows.py `flow_names`), with mitmproxy's own flow
objects: each source on its own, and a 400 for Hosts that can be read more than one way."""

from __future__ import annotations

import pytest
from mitmproxy.test import tflow

from addon.flows import flow_names
from addon.matching import BadHost


def flow(host: str = "auth.test", port: int = 80, **headers: str) -> tflow.HTTPFlow:
    f = tflow.tflow()
    f.request.host, f.request.port = host, port
    f.client_conn.sni = None  # tflow gives every client one
    f.request.headers.clear()
    for name, value in headers.items():
        f.request.headers.add(name.replace("_", "-"), value)
    return f


def test_each_source_on_its_own() -> None:
    names = flow_names(flow("Auth.Test", 80, Host="open.test:8080"))
    assert names.destination == ("auth.test", "auth.test:80")
    assert names.host == ("open.test", "open.test:8080")
    assert names.sni == ()


def test_a_host_without_a_port_gets_the_scheme_default() -> None:
    f = flow(Host="auth.test")
    f.request.scheme = "https"
    assert flow_names(f).host == ("auth.test", "auth.test:443")


def test_sni_is_a_source() -> None:
    f = flow(Host="auth.test")
    f.client_conn.sni = "open.test"
    assert flow_names(f).sni == ("open.test", "open.test:80")


def test_http2_authority_and_host_must_agree() -> None:
    f = flow(host="auth.test", Host="open.test")
    f.request.http_version = "HTTP/2.0"
    f.request.authority = "auth.test"
    with pytest.raises(BadHost):
        flow_names(f)
    f.request.headers["host"] = "AUTH.test"  # the same name, any case: fine
    assert flow_names(f).host == ("auth.test", "auth.test:80")


@pytest.mark.parametrize("value", ["a b", "auth.test/x", "user@auth.test", "auth.test:", "auth.test:0", ""])
def test_a_malformed_host_is_refused(value: str) -> None:
    with pytest.raises(BadHost):
        flow_names(flow(Host=value))


def test_two_host_headers_are_refused_even_when_equal() -> None:
    f = flow()
    f.request.headers.add("Host", "auth.test")
    f.request.headers.add("Host", "auth.test")
    with pytest.raises(BadHost):
        flow_names(f)
