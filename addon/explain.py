"""Why a hook did (or didn't) fire: the service chosen, then every hook with its reasons.

The same compiled matcher the proxy uses decides; this only says why, in words. The API's
`POST …/proxy/match` and the offline `proxy-hooks explain` both call `explain`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from addon.matching import ClientView, CompiledContainer, CompiledHook, RequestFacts, host_candidates
from addon.model import METHODS, HeaderMap


class ClientSample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = "127.0.0.1"
    user: str | None = None


class MatchQuery(BaseModel):
    """A request to explain: where it goes (`host`, optionally `host:port`) and what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    method: str = "GET"
    path: str = Field(default="/", pattern=r"^/")
    headers: HeaderMap = Field(default_factory=dict)
    client: ClientSample = Field(default_factory=ClientSample)

    def facts(self) -> RequestFacts:
        return RequestFacts.of(self.method, self.path, self.headers, self.client.address, self.client.user)

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
    if hook.methods is not None and request.method.upper() not in hook.methods:
        allowed = ", ".join(m for m in METHODS if m in hook.methods)
        reasons.append(f"method {request.method.upper()} not in [{allowed}]")
    if hook.path.match(request.path) is None:
        reasons.append(f"path {request.path} does not match {hook.hook.match.path}")
    for name, expected in hook.headers:
        actual = request.headers.get(name)
        if actual is None:
            reasons.append(f"header {name} missing")
        elif expected != "*" and actual != expected:
            reasons.append(f"header {name} is {actual!r}, not {expected!r}")
    if hook.groups is not None and client_groups.isdisjoint(hook.groups):
        reasons.append(f"client not in groups [{', '.join(hook.groups)}]")
    return reasons


def explain(containers: list[CompiledContainer], query: MatchQuery) -> dict[str, Any]:
    host, port = query.destination()
    names = host_candidates(host, port, query.host)
    request = query.facts()
    for container in containers:
        service = container.service_for(names)
        if service is None:
            continue
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
            "upstream": service.upstream,
            "client": {
                "address": request.client_address,
                "user": request.user,
                "groups": sorted(client.groups),
            },
            "hooks": hooks,
            "winner": None if winner is None else {"id": winner.id, "position": winner.position},
        }
    known = "; ".join(f"{s.name}: {', '.join(s.hosts) or 'no hosts'}" for c in containers for s in c.services)
    return {
        "container": None,
        "service": None,
        "reason": f"no service's hosts match {', '.join(names)} (hosts: {known or 'none defined'})",
        "upstream": None,
        "client": {"address": request.client_address, "user": request.user, "groups": []},
        "hooks": [],
        "winner": None,
    }
