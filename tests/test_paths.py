"""The canonical request path (addon/paths.py): every spelling of a path reads as that path, or is
refused; what the upstream gets reads the same; nothing ambiguous gets through."""

from __future__ import annotations

import random
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.paths import CanonicalPath, PathRejected, canonicalize, canonicalize_slowly
from tests.spellings import PLAIN_PATHS, classic_spellings, spell, spellings


@given(PLAIN_PATHS, st.integers(0, 2**32))
@settings(max_examples=400, deadline=None)
def test_every_spelling_reads_as_the_path(plain: str, seed: int) -> None:
    """A spelling of a path canonicalizes to that very path, and forwarding it to an upstream
    that decodes (as aiohttp, Flask, Express do) gives the same path again."""
    spelled = spell(plain, random.Random(seed))
    result = canonicalize(spelled)
    assert result.canonical == plain
    assert urllib.parse.unquote(result.forward) == plain
    assert "/./" not in result.forward and "/../" not in result.forward and "//" not in result.forward


@given(PLAIN_PATHS, st.integers(0, 2**32), st.sampled_from(["", "?a=1", "?a=%2F..%2F&b", "?"]))
@settings(max_examples=200, deadline=None)
def test_the_forwarded_form_is_a_fixed_point_and_keeps_the_query(plain: str, seed: int, query: str) -> None:
    result = canonicalize(spell(plain, random.Random(seed)) + query)
    again = canonicalize(result.forward)
    assert again.forward == result.forward and again.canonical == result.canonical
    assert result.forward.endswith(query) and not again.changed


def test_the_classic_spellings() -> None:
    for spelled in [*classic_spellings("/admin/x"), *spellings("/admin/x", 50)]:
        assert canonicalize(spelled).canonical == "/admin/x", spelled


def test_forwarding_decodes_only_unreserved_characters() -> None:
    result = canonicalize("/%61dmin/%7e/a%2d%5Fb/%3b%20%c3%a9/x%25y?q=%61")
    assert result.forward == "/admin/~/a-_b/%3B%20%C3%A9/x%25y?q=%61"
    assert result.canonical == "/admin/~/a-_b/; é/x%y"


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/", "/"),
        ("//", "/"),
        ("/a/", "/a/"),
        ("/a/.", "/a/"),
        ("/a/..", "/"),
        ("/a/b/../c", "/a/c"),
        ("/a//b///c", "/a/b/c"),
        ("/a/%2e%2E/b", "/b"),
        ("/a;x=1/b", "/a;x=1/b"),
    ],
)
def test_dot_segments_and_slashes(path: str, canonical: str) -> None:
    assert canonicalize(path).canonical == canonical


REFUSED = {
    "/../admin": "climbs above",
    "/a/../../admin": "climbs above",
    "/%2e%2e/admin": "climbs above",
    "/admin%2Fx": "encoded slash",
    "/admin%2fx": "encoded slash",
    "/admin%5Cx": "encoded backslash",
    "/admin\\x": "backslash",
    "/adm%00in": "NUL",
    "/adm%0ain": "control character",
    "/adm%0Din": "control character",
    "/adm%7fin": "control character",
    "/adm%C2%85in": "control character",
    "/adm%": "invalid percent-encoding",
    "/adm%4": "invalid percent-encoding",
    "/adm%g1": "invalid percent-encoding",
    "/adm%ffin": "not UTF-8",
    "/%c0%ae%c0%ae/admin": "not UTF-8",  # overlong dots
    "/adm\udcffin": "not UTF-8",  # a raw byte mitmproxy kept as a surrogate
    "/admin#x": "fragment",
    "*": "absolute path",
    "admin": "absolute path",
    "/x/..;/admin": "dot segment with parameters",
    "/x/.;a/admin": "dot segment with parameters",
    "/" + "a" * 9000: "longer than",
}


@pytest.mark.parametrize(("path", "why"), REFUSED.items(), ids=list(map(repr, REFUSED)))
def test_what_cannot_be_read_one_way_is_refused(path: str, why: str) -> None:
    with pytest.raises(PathRejected) as caught:
        canonicalize(path)
    assert why in caught.value.reason


@pytest.mark.parametrize(
    ("path", "canonical", "forward"),
    [
        ("/admin%2Fx", "/admin/x", "/admin/x"),
        ("/admin%5cx", "/admin/x", "/admin/x"),
        ("/admin\\x", "/admin/x", "/admin/x"),
        ("/a/%2e%2e%2Fadmin", "/admin", "/admin"),
        ("/x%2F..%2Fadmin?q=%2F", "/admin", "/admin?q=%2F"),
    ],
)
def test_decode_mode_reads_encoded_slashes_as_separators(path: str, canonical: str, forward: str) -> None:
    result = canonicalize(path, "decode")
    assert (result.canonical, result.forward) == (canonical, forward)


def test_an_unchanged_path_is_not_rewritten() -> None:
    assert canonicalize("/v1/users?id=1") == CanonicalPath("/v1/users?id=1", "/v1/users", "/v1/users?id=1")
    assert not canonicalize("/v1/users?id=1").changed


@given(st.text(alphabet="abz09-._~!$&'()*+,=:@/%;", max_size=30), st.sampled_from(["", "?a=b"]))
@settings(max_examples=500, deadline=None)
def test_the_fast_path_agrees_with_the_full_algorithm(path: str, query: str) -> None:
    target = "/" + path + query
    try:
        expected: CanonicalPath | str = canonicalize_slowly(target)
    except PathRejected as exc:
        expected = exc.reason
    try:
        got: CanonicalPath | str = canonicalize(target)
    except PathRejected as exc:
        got = exc.reason
    assert got == expected
