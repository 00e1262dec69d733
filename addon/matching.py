"""Which service a flow is for, and which of its hooks runs: compiled once per file version.

A `CompiledContainer` is built from one immutable `Snapshot` and never changes; a new file
version builds a new one and the addon swaps one reference. The per-flow path only reads it.
Nothing here knows about mitmproxy: a request is described by `RequestFacts`.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from addon.environments import NO_ENVIRONMENT, ResolvedEnvironment, for_hook, resolve_all
from addon.model import ANY_METHOD, RESERVED_SERVICES, Group, Hook
from addon.paths import without_parameters
from addon.store import Snapshot
from addon.validation import remote_url, service_upstreams

# Headers (and a query parameter) through which common frameworks (Express method-override,
# Rails, Spring, ASP.NET, many API gateways) let a POST act as another method.
METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
METHOD_OVERRIDE_PARAM = "_method"


@dataclass(frozen=True)
class RequestFacts:
    """What matching needs to know about one request.

    A hook matches if it matches any reading an upstream may take of the request: besides the
    method and the canonical path, `other_methods` are the methods a framework may act on
    instead (override headers, `_method`), `other_paths` the path with `;parameters` dropped
    (Tomcat and Spring read `/admin;x=1/y` as `/admin/y`). Both are empty for almost every
    request, and then cost nothing.
    """

    method: str
    path: str  # canonical (addon.paths), without the query
    headers: Mapping[str, str]  # lower-case names; the first value of each
    client_address: str
    user: str | None = None
    other_methods: tuple[str, ...] = ()
    other_paths: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        method: str,
        path: str,
        headers: Mapping[str, str],
        client_address: str,
        user: str | None,
        query: str = "",
    ) -> RequestFacts:
        """From a request as written anywhere: names and methods in any case; `path` canonical
        (a query on it is split off and read too)."""
        path, _, own_query = path.partition("?")
        lowered = {name.lower(): value for name, value in headers.items()}
        return cls.read(method.upper(), path, lowered, client_address, user, query or own_query)

    @classmethod
    def read(
        cls,
        method: str,
        path: str,
        headers: Mapping[str, str],
        client_address: str,
        user: str | None,
        query: str,
        form_methods: tuple[str, ...] = (),
    ) -> RequestFacts:
        """From the proxy's own view: method upper-case, header names lower-case already;
        `form_methods`: `_method` fields of a form body."""
        others = _override_methods(headers, query, form_methods)
        if method == "HEAD":
            others += ("GET",)  # frameworks run a GET handler for a HEAD request
        bare = without_parameters(path)
        return cls(
            method,
            path,
            headers,
            client_address,
            user,
            tuple(m for m in others if m != method) if others else (),
            (bare,) if bare != path else (),
        )


def _override_methods(
    headers: Mapping[str, str], query: str, form_methods: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Every method an override names: each token of a comma list (method-override takes the
    first, others the last), the query's `_method` however its key is encoded, a form's."""
    found = [headers[name] for name in METHOD_OVERRIDE_HEADERS if name in headers]
    if "method" in query.lower():  # `%5Fmethod` too: parse_qs decodes the keys
        found += urllib.parse.parse_qs(query, keep_blank_values=True).get(METHOD_OVERRIDE_PARAM, [])
    found += form_methods
    tokens = (token.strip().upper() for value in found for token in value.split(","))
    return tuple(dict.fromkeys(token for token in tokens if token))


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`*` stays inside one path segment, `**` spans segments; everything else is literal."""
    parts = []
    for index, piece in enumerate(pattern.split("**")):
        if index:
            parts.append(".*")
        parts.append("[^/]*".join(re.escape(chunk) for chunk in piece.split("*")))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


@dataclass(frozen=True)
class CompiledGroup:
    name: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    users: frozenset[str]
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def compile(cls, name: str, group: Group) -> CompiledGroup:
        return cls(
            name,
            tuple(ipaddress.ip_network(cidr, strict=False) for cidr in group.clients),
            frozenset(group.users),
            tuple((k.lower(), v) for k, v in group.headers.items()),
        )

    def holds(self, request: RequestFacts) -> bool:
        if self.networks:
            try:
                address = ipaddress.ip_address(request.client_address)
            except ValueError:
                address = None
            if address is not None:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                if any(address in network for network in self.networks):
                    return True
        if request.user is not None and request.user in self.users:
            return True
        return bool(self.headers) and _headers_match(self.headers, request.headers)


def _headers_match(expected: tuple[tuple[str, str], ...], headers: Mapping[str, str]) -> bool:
    for name, value in expected:
        actual = headers.get(name)
        if actual is None or (value != "*" and actual != value):
            return False
    return True


@dataclass(frozen=True)
class CompiledHook:
    hook: Hook
    position: int
    methods: frozenset[str] | None  # None: any method
    path: re.Pattern[str]
    headers: tuple[tuple[str, str], ...]
    groups: tuple[str, ...] | None  # None: everyone
    environment: ResolvedEnvironment = NO_ENVIRONMENT  # the variables its script gets
    remote_url: str | None = None  # a remote hook: the URL it POSTs the event to

    @classmethod
    def compile(
        cls,
        hook: Hook,
        position: int,
        environments: Mapping[str, ResolvedEnvironment] | None = None,
        upstreams: Mapping[str, str] | None = None,
    ) -> CompiledHook:
        """`upstreams`: the container's services that have one, by name (remote hooks)."""
        method = hook.match.method
        methods = [method] if isinstance(method, str) else method
        return cls(
            hook,
            position,
            None if ANY_METHOD in methods else frozenset(methods),
            glob_to_regex(hook.match.path),
            tuple((k.lower(), v) for k, v in hook.match.headers.items()),
            tuple(hook.applies_to.groups) if hook.applies_to else None,
            for_hook(environments or {}, hook.environment),
            remote_url(upstreams or {}, hook.script.subdomain, hook.script.path),
        )

    @property
    def id(self) -> str:
        return self.hook.id or ""

    def matches(self, request: RequestFacts, client_groups: frozenset[str]) -> bool:
        return (
            self.hook.enabled
            and self.method_matches(request)
            and self.path_matches(request)
            and _headers_match(self.headers, request.headers)
            and (self.groups is None or not client_groups.isdisjoint(self.groups))
        )

    def method_matches(self, request: RequestFacts) -> bool:
        methods = self.methods
        return (
            methods is None
            or request.method.upper() in methods
            or any(method in methods for method in request.other_methods)
        )

    def path_matches(self, request: RequestFacts) -> bool:
        return self.path.match(request.path) is not None or any(
            self.path.match(path) is not None for path in request.other_paths
        )


@dataclass(frozen=True)
class HookIndex:
    """Enabled hooks by the literal start of their path pattern, so a request only looks at
    hooks that could match its path, however many the service has.

    A pattern without `*` can only match itself (`exact`). One with a `*` can only match paths
    that start with its text before the first `*`; the index keys it by that text cut back to
    its last `/` (`by_prefix`), which is then one of the request path's segment prefixes
    (`/`, `/v1/`, `/v1/users/`, …). Candidates come out in position order, so the first that
    fully matches is the same hook a linear scan finds.
    """

    exact: dict[str, tuple[CompiledHook, ...]]
    by_prefix: dict[str, tuple[CompiledHook, ...]]

    @classmethod
    def build(cls, hooks: tuple[CompiledHook, ...]) -> HookIndex:
        exact: dict[str, list[CompiledHook]] = {}
        by_prefix: dict[str, list[CompiledHook]] = {}
        for hook in hooks:
            if not hook.hook.enabled:
                continue
            pattern = hook.hook.match.path
            star = pattern.find("*")
            if star < 0:
                exact.setdefault(pattern, []).append(hook)
            else:
                by_prefix.setdefault(pattern[: pattern.rfind("/", 0, star) + 1], []).append(hook)
        return cls({k: tuple(v) for k, v in exact.items()}, {k: tuple(v) for k, v in by_prefix.items()})

    def candidates(self, path: str) -> Iterator[CompiledHook]:
        buckets = []
        if (same := self.exact.get(path)) is not None:
            buckets.append(same)
        end = path.find("/")
        while end >= 0:
            if (bucket := self.by_prefix.get(path[: end + 1])) is not None:
                buckets.append(bucket)
            end = path.find("/", end + 1)
        if len(buckets) == 1:
            return iter(buckets[0])
        return heapq.merge(*buckets, key=_position)


def _position(hook: CompiledHook) -> int:
    return hook.position


@dataclass(frozen=True)
class CompiledService:
    name: str
    hosts: tuple[str, ...]  # the globs as written, for explanations
    host_patterns: tuple[re.Pattern[str], ...]
    upstream: str | None
    hooks: tuple[CompiledHook, ...]
    index: HookIndex
    # The upstream's own authority: a flow sent straight to it is this service's too.
    upstream_names: frozenset[str] = frozenset()
    # Headers whose value a hook or group of this service reads (and the method overrides):
    # repeated, they could be read one way here and another upstream.
    read_headers: frozenset[str] = frozenset()
    # A reject-listed service (logs, proxy, workspaces) a container declares: it names flows
    # like any service (so a flow cannot be two services at once) but never has hooks, and its
    # flows pass untouched.
    reserved: bool = False

    def serves(self, candidates: tuple[str, ...]) -> bool:
        return any(p.match(c) for p in self.host_patterns for c in candidates)


@dataclass
class ClientView:
    """A request plus the groups its client is in, worked out once and only if asked."""

    request: RequestFacts
    groups_by_name: Mapping[str, CompiledGroup]

    @cached_property
    def groups(self) -> frozenset[str]:
        return frozenset(name for name, g in self.groups_by_name.items() if g.holds(self.request))


@dataclass(frozen=True)
class CompiledContainer:
    snapshot: Snapshot
    services: tuple[CompiledService, ...]
    groups: Mapping[str, CompiledGroup]
    scripts_root: Path  # the snapshot's, worked out once
    # Names already looked up, per snapshot (a new file version compiles a new container).
    _by_names: dict[tuple[str, ...], tuple[CompiledService, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Exec-session scripts found inside the scripts folder, per snapshot (`engine.session_script`).
    session_scripts: dict[str, tuple[int, int, int, int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def compile(cls, snapshot: Snapshot) -> CompiledContainer:
        hooks_file = snapshot.hooks_file
        groups = {name: CompiledGroup.compile(name, g) for name, g in hooks_file.groups.items()}
        group_headers = {name for group in groups.values() for name, _ in group.headers}
        environments = resolve_all(hooks_file)  # the from_env values are read here, once per version
        upstreams = service_upstreams(hooks_file)
        services = []
        for name, service in hooks_file.services.items():
            hooks = tuple(
                CompiledHook.compile(h, i, environments, upstreams)
                for i, h in enumerate(hooks_file.hooks.get(name, []))
            )
            read = {name for hook in hooks for name, _ in hook.headers} | group_headers
            services.append(
                CompiledService(
                    name,
                    tuple(service.hosts),
                    tuple(_host_regex(glob) for glob in service.hosts),
                    service.upstream,
                    hooks,
                    HookIndex.build(hooks),
                    _upstream_names(service.upstream),
                    frozenset(read | set(METHOD_OVERRIDE_HEADERS)),
                    name in RESERVED_SERVICES,
                )
            )
        return cls(snapshot, tuple(services), groups, snapshot.scripts_root)

    @property
    def name(self) -> str:
        return self.snapshot.container

    def services_named(self, names: tuple[str, ...]) -> tuple[CompiledService, ...]:
        """The services one source's names point at: the first (in file order) whose hosts
        match, else every service whose upstream is that address (when several share it, the
        flow is for one of them, which the other sources must settle)."""
        if not names:
            return ()
        cache = self._by_names
        if names in cache:
            return cache[names]
        found = next((service for service in self.services if service.serves(names)), None)
        if found is not None:
            services: tuple[CompiledService, ...] = (found,)
        else:
            services = tuple(s for s in self.services if not s.upstream_names.isdisjoint(names))
        if len(cache) < NAME_CACHE_MAX:  # bounded: names come from clients
            cache[names] = services
        return services

    def first_match(self, service: CompiledService, client: ClientView) -> CompiledHook | None:
        """The first enabled hook in position order whose every condition holds."""
        if client.request.other_paths:  # rare: the index is keyed by one path only
            return self.first_match_linear(service, client)
        for hook in service.index.candidates(client.request.path):
            if hook.matches(client.request, client.groups if hook.groups is not None else frozenset()):
                return hook
        return None

    @staticmethod
    def first_match_linear(service: CompiledService, client: ClientView) -> CompiledHook | None:
        """The plain scan the index must agree with (the property test compares them)."""
        for hook in service.hooks:
            if hook.matches(client.request, client.groups if hook.groups is not None else frozenset()):
                return hook
        return None


def _host_regex(glob: str) -> re.Pattern[str]:
    """`*` is the only wildcard (`[::1]` is an IPv6 address, not a character class); a glob
    without one is a host, normalized as flows' hosts are."""
    if "*" not in glob:
        host, sep, port = glob.rpartition(":") if not glob.endswith("]") else (glob, "", "")
        if not sep or not port.isdigit():
            host, sep, port = glob, "", ""
        return re.compile(re.escape(normal_host(host) + sep + port) + r"\Z")
    return re.compile(".*".join(re.escape(part) for part in glob.lower().split("*")) + r"\Z")


NAME_CACHE_MAX = 4096
_HOST_RE = re.compile(
    r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(?P<port>[0-9]{1,5}))?\Z"
)


class BadHost(ValueError):
    """A Host header (or :authority) that is not `host[:port]`: the proxy answers 400."""


# Every flow's destination and Host header go through these: the same few names, read again
# and again. Bounded (names come from clients); errors (BadHost) are not remembered.
NAMES_CACHED = 4096


@functools.lru_cache(maxsize=NAMES_CACHED)
def host_names(host: str, port: int | None) -> tuple[str, ...]:
    """The names one source gives a flow: the host, and host:port. Case, a trailing dot and the
    spelling of an IP address do not make another name: `Auth.Test.` is `auth.test`, and
    `127.1`, `0x7f000001`, `2130706433` and `[::ffff:127.0.0.1]` are all `127.0.0.1`, as the
    resolver reads them."""
    name = normal_host(host)
    return (name, f"{name}:{port}") if port is not None else (name,)


_INET_ATON = re.compile(r"[0-9][0-9a-fA-FxX.]*\Z")


def normal_host(host: str) -> str:
    """One spelling per host: lower case, no trailing dot, IP literals in their canonical form
    (IPv6 in brackets, IPv4-mapped IPv6 as IPv4)."""
    name = host.strip().lower()
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if ":" in bare:
        try:
            address = ipaddress.IPv6Address(bare)
        except ValueError:
            return name
        mapped = address.ipv4_mapped
        return str(mapped) if mapped is not None else f"[{address.compressed}]"
    name = name.rstrip(".")
    if _INET_ATON.match(name):
        try:  # inet_aton reads the legacy forms getaddrinfo accepts: 127.1, 0x7f.1, 017700000001
            return socket.inet_ntoa(socket.inet_aton(name))
        except OSError:
            return name
    return name


@functools.lru_cache(maxsize=NAMES_CACHED)
def parse_host_header(value: str, default_port: int) -> tuple[str, ...]:
    """The names a Host header (or HTTP/2 :authority) gives; BadHost if it is not host[:port]."""
    match = _HOST_RE.match(value.strip())
    if match is None:
        raise BadHost(f"the Host header {value[:80]!r} is not host[:port]")
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise BadHost(f"the Host header {value[:80]!r} has an invalid port")
    return host_names(match["host"], int(port) if port else default_port)


@dataclass(frozen=True)
class FlowNames:
    """What a flow says about where it goes, one source at a time. Each must name the same
    service (or none): a client must not reach one service while being judged as another."""

    # Where the proxy is asked to send it (absolute URL, CONNECT, reverse target).
    destination: tuple[str, ...]
    host: tuple[str, ...] = ()  # the Host header / :authority
    sni: tuple[str, ...] = ()  # the TLS server name, when the client sent one

    def sources(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        yield "destination", self.destination
        if self.host:
            yield "host", self.host
        if self.sni:
            yield "sni", self.sni


def _upstream_names(upstream: str | None) -> frozenset[str]:
    if upstream is None:
        return frozenset()
    parts = urllib.parse.urlsplit(upstream)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return frozenset(host_names(parts.hostname or "", port)[1:])  # host:port only


@dataclass(frozen=True)
class Misdirected(Exception):
    """Two sources of one flow name different services: the proxy answers 421."""

    named: dict[str, str]  # source -> "container/service"

    def __str__(self) -> str:
        return "; ".join(f"the {source} names service {service!r}" for source, service in self.named.items())


def resolve_service(
    containers: Iterable[CompiledContainer], names: FlowNames
) -> tuple[CompiledContainer, CompiledService] | None:
    """The one service a flow is for, or None (not ours). Misdirected when the destination, the
    Host header and the SNI name different services (or leave it open between several, as an
    upstream they share does); a source that names none does not count."""
    chosen: list[tuple[CompiledContainer, CompiledService]] | None = None
    named: dict[str, str] = {}
    for source, candidates in names.sources():
        found = [(c, s) for c in containers for s in c.services_named(candidates)]
        if not found:
            continue
        named[source] = " or ".join(f"{c.name}/{s.name}" for c, s in found)
        ids = {(id(c), id(s)) for c, s in found}  # the same compiled objects, not equal ones
        chosen = found if chosen is None else [(c, s) for c, s in chosen if (id(c), id(s)) in ids]
        if not chosen:
            raise Misdirected(named)
    if chosen is None:
        return None
    if len(chosen) > 1:
        raise Misdirected(named)
    return chosen[0]
