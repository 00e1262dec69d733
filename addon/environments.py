"""Environments: the named sets of variables a hook's script gets on top of the minimal
environment (`addon.scripts.minimal_env`).

A variable is a literal or `{"from_env": NAME}`, the proxy's own environment variable NAME, read
when the file is loaded (compiled). Those values are secrets: they exist only in the compiled
`ResolvedEnvironment`; what is shown anywhere (catalog, API, events) is `"***"`, and a run's
stderr, reason and error have them masked (`redact`) before anything records them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from addon.model import DEFAULT_ENVIRONMENT, Environment, FromEnv, HooksFile

MASK = "***"
# A secret shorter than this is not masked inside other text (masking "1" would garble every
# message); it still never appears where the variable itself is shown.
MIN_MASKED_LENGTH = 4


@dataclass(frozen=True)
class ResolvedEnvironment:
    """One environment, its variables' values in hand. `missing`: variables whose `from_env`
    is not set in the proxy's environment (a run with them fails, closed or open as the hook
    says; validation refuses such a file before it gets here)."""

    name: str
    variables: Mapping[str, str] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    missing: tuple[str, ...] = ()
    shown: Mapping[str, str] = field(default_factory=dict)  # values with secrets as "***"

    @property
    def digest(self) -> str:
        """Changes when any value does: exec-session workers are keyed by it."""
        text = "\0".join(f"{k}={v}" for k, v in sorted(self.variables.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16] if self.variables else ""

    @property
    def problem(self) -> str | None:
        if not self.missing:
            return None
        return f"environment {self.name!r}: " + "; ".join(self.missing)


NO_ENVIRONMENT = ResolvedEnvironment(DEFAULT_ENVIRONMENT)


def resolve(name: str, environment: Environment, environ: Mapping[str, str]) -> ResolvedEnvironment:
    variables: dict[str, str] = {}
    shown: dict[str, str] = {}
    secrets: set[str] = set()
    missing: list[str] = []
    for var, value in environment.items():
        if isinstance(value, FromEnv):
            found = environ.get(value.from_env)
            if found is None:
                missing.append(missing_reason(var, value.from_env))
                continue
            variables[var] = found
            shown[var] = MASK
            if found:
                secrets.add(found)
        else:
            variables[var] = shown[var] = value
    return ResolvedEnvironment(name, variables, frozenset(secrets), tuple(missing), shown)


def missing_reason(var: str, source: str) -> str:
    return (
        f"{var} reads the proxy's environment variable {source!r}, which is not set; set it where "
        f"the proxy starts (export {source}=…) or give {var} a literal value"
    )


def resolve_all(
    hooks_file: HooksFile, environ: Mapping[str, str] | None = None
) -> dict[str, ResolvedEnvironment]:
    """Every environment of the file, resolved against `environ` (default: this process's)."""
    environ = os.environ if environ is None else environ
    return {name: resolve(name, env, environ) for name, env in hooks_file.environments.items()}


def for_hook(resolved: Mapping[str, ResolvedEnvironment], name: str | None) -> ResolvedEnvironment:
    """The environment a hook names (None: "default"); an undefined "default" is empty."""
    name = name or DEFAULT_ENVIRONMENT
    found = resolved.get(name)
    if found is not None:
        return found
    if name == DEFAULT_ENVIRONMENT:
        return NO_ENVIRONMENT
    return ResolvedEnvironment(name, missing=(f"environment {name!r} is not defined",))


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """`redact` for a body: each secret's UTF-8 bytes replaced by "***"."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_MASKED_LENGTH:
            data = data.replace(secret.encode(), MASK.encode())
    return data


def redact(text: str | None, secrets: Iterable[str]) -> str | None:
    """`text` with every secret value (longest first, so one inside another goes whole)
    replaced by "***"."""
    if not text:
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_MASKED_LENGTH:
            text = text.replace(secret, MASK)
    return text
