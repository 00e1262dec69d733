"""A mitmproxy script loaded after the addon (`-s addon/proxy_hooks.py -s tests/fault_injector.py`)
by tests/test_fault_injection.py: it wraps each stage of the addon's hook path so that the stage
raises when the request path contains `/fault-<stage>-<phase>/` (once per path, so that the
failure itself can still be recorded). The addon runs unchanged otherwise: this is a fault in
the real process, not a stand-in for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from addon import enforcer, engine

PHASES = ("request", "response")
# stage -> (owner, attribute): what each stage of "matched → verdict applied → recorded" calls.
STAGES: dict[str, tuple[Any, str]] = {
    "match": (enforcer.ProxyHooks, "_match"),
    "start": (enforcer.ProxyHooks, "_new_run"),
    "event": (enforcer, "hook_event"),
    "run": (enforcer, "run_hook"),
    "judge": (engine.HookRun, "settle"),
    "apply": (enforcer, "apply_verdict"),
    "finish": (enforcer.ProxyHooks, "_finish"),
    "record": (enforcer.ProxyHooks, "_record"),
    # Checking a service's response for a protocol switch (see _refuse_protocol_switch).
    "switch": (enforcer, "_refuse_protocol_switch"),
}
_raised: set[tuple[str, str]] = set()


def _where(args: tuple[Any, ...]) -> tuple[str, str] | None:
    """(request path, phase) of a stage's call, from whatever it was given."""
    for arg in args:  # a run or an event knows its phase
        if isinstance(arg, engine.HookRun):
            return arg.path, arg.phase
        if isinstance(arg, dict) and "request" in arg and "phase" in arg:
            return str(arg["request"]["path"]), str(arg["phase"])
    phase = next((a for a in args if isinstance(a, str) and a in PHASES), "request")
    flow = next((a for a in args if isinstance(a, http.HTTPFlow)), None)
    return None if flow is None else (flow.request.path, phase)


def _faulty(stage: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        where = _where(args)
        if where is not None:
            path, phase = where
            key = (stage, path)
            if f"/fault-{stage}-{phase}/" in path and key not in _raised:
                _raised.add(key)
                raise RuntimeError(f"injected fault in {stage} ({phase})")
        return original(*args, **kwargs)

    return wrapper


for _stage, (_owner, _name) in STAGES.items():
    setattr(_owner, _name, _faulty(_stage, getattr(_owner, _name)))
