"""Generated spellings of a path: every way a client can write `/admin/x` that an upstream may
still read as `/admin/x`. Shared by the canonicalizer's unit tests and the proxy attack tests,
so both attack the same class of input.

Each spelling is built from the plain path by transformations an upstream undoes: percent-encoding
any character (either hex case), empty segments (`//`), `.` segments, detours through `..`, and
their encoded forms (`%2e`, `%2E%2e`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

from hypothesis import strategies as st

# What may stand in a path segment unencoded (RFC 3986 pchar, less "%").
_RAW_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@")


def encode_char(char: str, upper: bool) -> str:
    code = "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return code if upper else code.lower()


def spell_segment(segment: str, rng: random.Random) -> str:
    """A plain segment, written with a random subset of its characters percent-encoded (and
    those that cannot stand raw always encoded)."""
    return "".join(
        encode_char(c, rng.random() < 0.5) if c not in _RAW_OK or rng.random() < 0.4 else c for c in segment
    )


DOTS = [".", "%2e", "%2E"]
DOTDOTS = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e."]


def spell(path: str, rng: random.Random) -> str:
    """One random spelling of the plain (decoded) `path`: starts with `/`, no dot segments."""
    out = [""]
    for segment in path.strip("/").split("/"):
        for _ in range(rng.randrange(3)):
            kind = rng.randrange(3)
            if kind == 0:
                out.append("")  # a doubled slash
            elif kind == 1:
                out.append(rng.choice(DOTS))
            else:
                out += [spell_segment(rng.choice(["x", "a1", "zz"]), rng), rng.choice(DOTDOTS)]
        out.append(spell_segment(segment, rng) if rng.random() < 0.7 else segment)
    return "/".join(out)


def spellings(path: str, count: int, seed: int = 0) -> list[str]:
    """`count` distinct spellings of `path`, the path itself excluded; reproducible by seed."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    for _ in range(count * 20):
        candidate = spell(path, rng)
        if candidate != path:
            seen.setdefault(candidate)
        if len(seen) >= count:
            break
    return list(seen)


def classic_spellings(path: str) -> Iterator[str]:
    """The hand-known ones from the issue and from Envoy/nginx advisories, for readable failures."""
    head, _, rest = path.strip("/").partition("/")
    yield f"/{encode_char(head[0], False)}{head[1:]}/{rest}"
    yield f"//{head}/{rest}"
    yield f"/./{head}/{rest}"
    yield f"/x/../{head}/{rest}"
    yield f"/x/%2e%2e/{head}/{rest}"
    yield f"/{head}/./{rest}"
    yield f"/{head}//{rest}"
    for dots in itertools.islice(DOTDOTS, 1, None):
        yield f"/zz/{dots}/{head}/{rest}"


SEGMENT_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\?#%"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
PLAIN_PATHS = st.lists(SEGMENT_TEXT, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
