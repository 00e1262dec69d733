"""Where finished hook runs go. The events store (SQLite) plugs in here; until then, the log."""

from __future__ import annotations

import logging
from typing import Protocol

from addon.engine import HookRun

log = logging.getLogger("proxy_hooks.runs")


class Recorder(Protocol):
    def record(self, run: HookRun) -> None:
        """Take one finished run. Must never block: it is called on the proxy's event loop."""


class LogRecorder:
    def record(self, run: HookRun) -> None:
        detail = run.reason or run.error or ""
        log.info(
            "hook %s%s v%d (%s/%s #%d, %s) %s %s%s: %s%s",
            run.hook_id,
            f" {run.hook_name!r}" if run.hook_name else "",
            run.hook_version,
            run.container,
            run.service,
            run.position,
            run.phase,
            run.method,
            run.host,
            run.path,
            run.outcome,
            f" ({detail})" if detail else "",
        )
        if run.stderr and run.stderr != detail:
            log.info("hook %s stderr: %s", run.hook_id, run.stderr)
