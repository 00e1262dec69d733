"""Why a hook did (or didn't) fire: the service chosen, then every hook with its reasons.

The same compiled matcher the proxy uses decides; this only says why, in words. The API's
`POST …/proxy/match` and the offline `proxy-hooks explain` both call `explain`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from addon.admission import Refused, admit, canonical_path, path_forms
from addon.matching import (
    ClientView,
    CompiledContainer,
    CompiledHook,
    FlowNames,
    RequestFacts,
    host_names,
    parse_host_header,
)
from addon.model import METHODS, HeaderMap, reserved_service
from addon.paths import EncodedSlashes


class ClientSample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = "127.0.0.1"
    user: str | None = None


class MatchQuery(BaseModel):
    """A request to explain: where it goes (`host`, optionally `host:port`) and what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=300)
    method: str = "GET"
    path: str = Field(default="/", pattern=r"^/", max_length=8192)
    headers: HeaderMap = Field(default_factory=dict)
    client: ClientSample = Field(default_factory=ClientSample)
    host_header: str | None = Field(
        default=None, max_length=300, description="the Host header, when it differs from `host`"
    )
    sni: str | None = Field(default=None, max_length=300, description="the TLS server name, if any")

    def facts(self, canonical_path: str) -> RequestFacts:
        query = self.path.partition("?")[2]
        return RequestFacts.of(
            self.method, canonical_path, self.headers, self.client.address, self.client.user, query
        )

    def names(self) -> FlowNames:
        """Each source on its own, as the proxy sees a flow; a Host header defaults to `host`."""
        host, port = self.destination()
        given = {k.lower(): v for k, v in self.headers.items()}.get("host")
        header = self.host_header or given or self.host
        return FlowNames(
            destination=host_names(host, port),
            host=parse_host_header(header, port),
            sni=host_names(self.sni, port) if self.sni else (),
        )

    def destination(self) -> tuple[str, int]:
        host, _, port = self.host.rpartition(":")
        if host and port.isascii() and port.isdigit():
            return host, int(port)
        return self.host, 80


def hook_reasons(hook: CompiledHook, request: RequestFacts, client_groups: frozenset[str]) -> list[str]:
    """Every condition of the hook that the request fails, in words; empty: it matches."""
    reasons = []
    if not hook.hook.enabled:
        reasons.append("disabled")
    if not hook.method_matches(request):
        assert hook.methods is not None
        allowed = ", ".join(m for m in METHODS if m in hook.methods)
        overrides = (
            f" (nor its overrides {', '.join(request.other_methods)})" if request.other_methods else ""
        )
        reasons.append(f"method {request.method.upper()}{overrides} not in [{allowed}]")
    if not hook.path_matches(request):
        readings = f" (nor {', '.join(request.other_paths)})" if request.other_paths else ""
        reasons.append(f"path {request.path}{readings} does not match {hook.hook.match.path}")
    for name, expected in hook.headers:
        actual = request.headers.get(name)
        if actual is None:
            reasons.append(f"header {name} missing")
        elif expected != "*" and actual != expected:
            reasons.append(f"header {name} is {actual!r}, not {expected!r}")
    if hook.groups is not None and client_groups.isdisjoint(hook.groups):
        reasons.append(f"client not in groups [{', '.join(hook.groups)}]")
    return reasons


def explain(
    containers: list[CompiledContainer], query: MatchQuery, encoded_slashes: EncodedSlashes = "reject"
) -> dict[str, Any]:
    """What the proxy would do with this request: refuse it (400, 421), leave it alone (no
    service), or walk the service's hooks on its canonical path — and why, for each hook."""
    try:
        admitted = admit(containers, query.names, query.path, encoded_slashes)
    except Refused as refused:
        return _unmatched(query, refused.body["reason"], refused=refused)
    if admitted is None:
        path = canonical_path_or_none(query.path, encoded_slashes)
        names = ", ".join(dict.fromkeys(n for _, source in query.names().sources() for n in source))
        known = "; ".join(
            f"{s.name}: {', '.join(s.hosts) or 'no hosts'}" for c in containers for s in c.services
        )
        return _unmatched(
            query, f"no service's hosts match {names} (hosts: {known or 'none defined'})", path=path
        )
    container, service = admitted.container, admitted.service
    if admitted.path is None:
        return {
            **_unmatched(query, f"{reserved_service(service.name)}: its flows pass untouched, without hooks"),
            "container": container.name,
            "service": service.name,
            "upstream": service.upstream,
        }
    request = query.facts(admitted.path.canonical)
    client = ClientView(request, container.groups)
    winner: CompiledHook | None = None
    hooks = []
    for hook in service.hooks:
        reasons = hook_reasons(hook, request, client.groups)
        matched = not reasons
        hooks.append(
            {
                "id": hook.id,
                "position": hook.position,
                "matched": matched,
                "reached": winner is None,
                "reasons": reasons,
            }
        )
        if matched and winner is None:
            winner = hook
    return {
        "container": container.name,
        "service": service.name,
        "reason": None,
        "refused": None,
        "path": path_forms(admitted.path),
        "upstream": service.upstream,
        "client": {
            "address": request.client_address,
            "user": request.user,
            "groups": sorted(client.groups),
        },
        "hooks": hooks,
        "winner": None if winner is None else {"id": winner.id, "position": winner.position},
    }


def canonical_path_or_none(target: str, encoded_slashes: EncodedSlashes) -> dict[str, str] | None:
    """The path forms of a request no service takes (the proxy leaves such paths alone)."""
    try:
        return path_forms(canonical_path(target, encoded_slashes))
    except Refused:
        return None


def _unmatched(
    query: MatchQuery, reason: str, refused: Refused | None = None, path: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "container": None,
        "service": None,
        "reason": reason,
        "refused": None if refused is None else {"status": refused.status, **refused.body},
        "path": path,
        "upstream": None,
        "client": {"address": query.client.address, "user": query.client.user, "groups": []},
        "hooks": [],
        "winner": None,
    }
