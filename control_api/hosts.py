"""The Host names the control API answers to (see `control_api.access` for why)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name`, `name:port`, `[v6]` or `[v6]:port` → (name as written, port or None); None when
    it is none of these."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if not rest:
            return name, None
        if not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        name, sep, port = value.rpartition(":")
        if not sep:
            return value, None
    if not name or not port.isascii() or not port.isdigit() or len(port) > 5 or int(port) > 65535:
        return None
    return name, int(port)


@dataclass(frozen=True)
class HostPolicy:
    """The Host names this API answers to. `listen_names` are matched with the port the
    connection arrived on; `any_port` names with any port; `with_port` as `name:port`."""

    listen_names: frozenset[str]
    any_port: frozenset[str]
    with_port: frozenset[tuple[str, int]]

    @classmethod
    def build(cls, listen_host: str | None, allowed: Iterable[str]) -> HostPolicy:
        names = set(LOOPBACK_NAMES)
        if listen_host:
            names.add(_bracketed(listen_host.lower()))
        any_port, with_port = set(), set()
        for entry in allowed:
            entry = entry.strip().lower()
            if not entry:
                continue
            parsed = split_host(entry)
            if parsed is None:
                raise ValueError(f"allowed API host must be NAME or NAME:PORT, got {entry!r}")
            name, port = parsed
            if port is None:
                any_port.add(name)
            else:
                with_port.add((name, port))
        return cls(frozenset(names), frozenset(any_port), frozenset(with_port))

    def allows(self, host: str, bound: tuple[str, int] | None) -> bool:
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if name in self.any_port:
            return True
        effective = 80 if port is None else port
        if (name, effective) in self.with_port:
            return True
        if bound is None:
            return False
        bound_host, bound_port = bound
        listen = self.listen_names | {_bracketed(bound_host)}
        return name in listen and effective == bound_port


def parse_hosts(values: Iterable[str]) -> list[str]:
    """Option values as given (repeated, or comma-separated in one `--set`), checked."""
    hosts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    HostPolicy.build(None, hosts)  # raises ValueError on a malformed entry
    return hosts
