"""Where finished hook runs go besides the events store: the log.

A log line costs mitmproxy more than it looks: its root logger is at debug level, and one of its
handlers schedules an event for every addon on the loop for each record, whatever its level.
So a run that went as planned (continued, modified, responded, observed) is logged only when the
proxy's own output is at debug level (`termlog_verbosity=debug`, see `log_every_run`), and then
at debug; blocked, failed and timed-out runs, and whatever a script wrote to stderr, at info.
"""

from __future__ import annotations

import logging
from typing import Protocol

from addon.engine import HookRun

log = logging.getLogger("proxy_hooks.runs")

NOTABLE = frozenset({"blocked", "failed", "timeout"})


def log_every_run(on: bool) -> None:
    """Whether runs that went as planned are logged too (a logger level check: free when not)."""
    log.setLevel(logging.DEBUG if on else logging.INFO)


log_every_run(False)


class Recorder(Protocol):
    def record(self, run: HookRun) -> None:
        """Take one finished run. Must never block: it is called on the proxy's event loop."""


class LogRecorder:
    def record(self, run: HookRun) -> None:
        level = logging.INFO if run.outcome in NOTABLE else logging.DEBUG
        if log.isEnabledFor(level):
            detail = run.reason or run.error or ""
            log.log(
                level,
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
        if run.stderr and run.stderr != (run.reason or run.error):
            log.info("hook %s stderr: %s", run.hook_id, run.stderr)
