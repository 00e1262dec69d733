"""The one canonical form of a request path: what hooks match, and what the upstream receives.

A hook on `/admin/**` must hold for every spelling of `/admin/...` an upstream would accept:
`/%61dmin/x`, `//admin/x`, `/./admin/x`, `/x/../admin/x`. So a path is canonicalized once, before
any hook is looked at (Envoy's `normalize_path` + `merge_slashes`), and everything downstream —
matching, events, explain, dry runs and the upstream itself — uses the result, never the raw bytes:

- `canonical`: percent-decoded, dot segments removed (RFC 3986 §5.2.4, `%2e` counts as `.`),
  repeated slashes merged. Hooks match this; events show it.
- `forward`: the same path as the upstream gets it: RFC 3986 normalization (encodings of
  unreserved characters decoded, the rest kept as sent with upper-case hex), dot segments and
  repeated slashes gone, then the query exactly as sent. Decoding `forward` gives `canonical`.

What cannot be canonicalized safely is refused (the proxy answers 400 before any hook runs):
invalid percent-encoding, a NUL or other control character, bytes that are not UTF-8, a path that
climbs above `/`, a fragment, a target that is not an absolute path. Encoded slashes and
backslashes (`%2F`, `%5C`, and a raw `\\`) are ambiguous — upstreams differ on whether they
separate segments, and either reading can dodge a hook — so they are refused too, unless the
operator chose `decode` (`hooks_encoded_slashes`): then each becomes `/`, for matching and
forwarding alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

EncodedSlashes = Literal["reject", "decode"]
ENCODED_SLASH_MODES: tuple[EncodedSlashes, ...] = ("reject", "decode")
MAX_PATH = 8192

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
_SLASHES = frozenset({"2F", "5C"})
# Anything that is not a plain printable character once decoded: C0 controls, DEL, and the C1
# range (which some servers fold into C0 or strip).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A path of only these characters, with no `//` and no segment starting with `.`, is already
# canonical: the fast path for nearly every request (no `%`, `\\`, `;`, `#`, control or non-ASCII).
_PLAIN = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,=:@/]*\Z")


class PathRejected(ValueError):
    """The request target cannot be canonicalized safely: the proxy answers 400 with `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CanonicalPath:
    as_sent: str  # the request target as the client sent it, query included
    canonical: str  # decoded, no query: what hooks match
    forward: str  # normalized and still encoded, query as sent: what the upstream gets

    @property
    def changed(self) -> bool:
        return self.forward != self.as_sent


def canonicalize(target: str, encoded_slashes: EncodedSlashes = "reject") -> CanonicalPath:
    """Canonicalize an origin-form request target (`/path?query`); PathRejected says why not."""
    if len(target) > MAX_PATH:
        raise PathRejected(f"the request target is longer than {MAX_PATH} characters")
    path = target.partition("?")[0]
    if _PLAIN.match(path) and "//" not in path and "/." not in path:
        return CanonicalPath(target, path, target)
    return canonicalize_slowly(target, encoded_slashes)


def canonicalize_slowly(target: str, encoded_slashes: EncodedSlashes = "reject") -> CanonicalPath:
    """`canonicalize` without its fast path (which a test holds to this)."""
    path, question, query = target.partition("?")
    if "#" in path:
        raise PathRejected("the request target must not contain a fragment ('#')")
    if not path.startswith("/"):
        raise PathRejected(
            f"the request target must be an absolute path starting with '/', got {path[:40]!r}"
        )
    segments = _normalized_segments(path, encoded_slashes)
    decoded = [_decode(segment) for segment in segments]
    # Merge repeated slashes; remove dot segments; refuse to climb above the root.
    out: list[tuple[str, str]] = []
    trailing = False
    for raw, text in zip(segments, decoded, strict=True):
        trailing = False
        if text in ("", "."):
            trailing = True
            continue
        if text.split(";", 1)[0] in (".", "..") and ";" in text:
            # `..;x` is `..` to servers that strip path parameters (Tomcat, Spring): ambiguous.
            raise PathRejected(
                "the path has a dot segment with parameters ('..;'), which upstreams read differently"
            )
        if text == "..":
            if not out:
                raise PathRejected("the path climbs above '/' with '..'")
            out.pop()
            trailing = True
            continue
        out.append((raw, text))
    suffix = "/" if trailing and out else ""
    forward_path = "/" + "/".join(raw for raw, _ in out) + suffix
    canonical = "/" + "/".join(text for _, text in out) + suffix
    return CanonicalPath(target, canonical, forward_path + (question + query))


def _normalized_segments(path: str, encoded_slashes: EncodedSlashes) -> list[str]:
    """The path's segments (after the leading `/`) with unreserved encodings decoded, other
    encodings upper-cased, and encoded slashes refused or turned into separators."""
    if "\\" in path and encoded_slashes == "reject":
        raise PathRejected(
            "the path contains a backslash, which upstreams read differently "
            "(set hooks_encoded_slashes=decode to treat it as '/')"
        )
    out: list[str] = []
    i, n = 0, len(path)
    while i < n:
        char = path[i]
        if char == "%":
            pair = path[i + 1 : i + 3]
            if len(pair) < 2 or not set(pair) <= _HEX:
                raise PathRejected(f"invalid percent-encoding {path[i : i + 3]!r} in the path")
            pair = pair.upper()
            decoded = chr(int(pair, 16))
            if pair in _SLASHES:
                if encoded_slashes == "reject":
                    raise PathRejected(
                        f"the path contains an encoded {'slash' if pair == '2F' else 'backslash'} "
                        f"(%{pair}), which upstreams read differently "
                        "(set hooks_encoded_slashes=decode to treat it as '/')"
                    )
                out.append("/")
            elif decoded in _UNRESERVED:
                out.append(decoded)
            else:
                out.append("%" + pair)
            i += 3
            continue
        out.append("/" if char == "\\" else char)
        i += 1
    return "".join(out)[1:].split("/")


def _decode(segment: str) -> str:
    """Percent-decode one normalized segment into text; refuse what is not clean UTF-8 text."""
    if "%" in segment:
        raw = bytearray()
        i = 0
        while i < len(segment):
            if segment[i] == "%":
                raw.append(int(segment[i + 1 : i + 3], 16))
                i += 3
            else:
                raw += segment[i].encode("utf-8", "surrogateescape")
                i += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PathRejected("the path's percent-encoded bytes are not UTF-8") from None
    else:
        try:
            segment.encode("utf-8")
        except UnicodeEncodeError:  # raw bytes that were not UTF-8 (mitmproxy's surrogateescape)
            raise PathRejected("the path is not UTF-8") from None
        text = segment
    if _CONTROL.search(text):
        what = "a NUL byte" if "\x00" in text else "a control character"
        raise PathRejected(f"the path contains {what}")
    return text


def without_parameters(canonical: str) -> str:
    """The canonical path as servers that drop path parameters read it: `/admin;x=1/y` is
    `/admin/y` to Tomcat and Spring. Hooks match this reading too (see RequestFacts)."""
    if ";" not in canonical:
        return canonical
    return "/".join(segment.split(";", 1)[0] for segment in canonical.split("/"))
