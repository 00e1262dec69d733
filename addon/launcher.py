"""`proxy-hooks run`: mitmdump with the addon loaded, without typing mitmproxy options.

The configuration is checked first (nothing written), so a typo is a clear message and exit
code 2 rather than a proxy that starts and refuses every flow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from addon.containers import check
from control_api.server import TOKEN_ENV

ADDON_ENTRY = Path(__file__).resolve().with_name("proxy_hooks.py")


class LaunchError(Exception):
    pass


def _names_set(args: Sequence[str]) -> set[str]:
    """Option names given as `--set NAME=…` or `--set=NAME=…`."""
    names = set()
    for index, arg in enumerate(args):
        spec = arg.removeprefix("--set=") if arg.startswith("--set=") else None
        if arg == "--set" and index + 1 < len(args):
            spec = args[index + 1]
        if spec:
            names.add(spec.split("=", 1)[0])
    return names


def mitmdump_args(
    config: Path,
    listen_host: str,
    listen_port: int,
    api: str,
    modes: Sequence[str],
    extra: Sequence[str],
    events: str | None = None,
    api_hosts: Sequence[str] = (),
) -> list[str]:
    args = ["--listen-host", listen_host, "--listen-port", str(listen_port)]
    for mode in modes:
        args += ["--mode", mode]
    ours = {
        # Services may send flows to another upstream, so connect only once the request (and
        # the hook's verdict) is known.
        "connection_strategy": "lazy",
        "hooks_config": str(config.absolute()),
        "hooks_api": api,
    }
    if events is not None:
        ours["hooks_events"] = events
    if api_hosts:
        ours["hooks_api_hosts"] = ",".join(api_hosts)  # one --set: the addon splits on commas
    # An option given twice makes mitmproxy drop *every* deferred option of the -s script,
    # leaving the addon unconfigured: what the user passes wins, ours are left out.
    given = _names_set(extra)
    for name, value in ours.items():
        if name not in given:
            args += ["--set", f"{name}={value}"]
    return [*args, "-s", str(ADDON_ENTRY), *extra]


def launch(
    config: Path,
    listen_host: str,
    listen_port: int,
    api: str,
    modes: Sequence[str],
    extra: Sequence[str],
    token: str | None,
    events: str | None = None,
    api_hosts: Sequence[str] = (),
) -> int:
    # Only what stops the addon loading the files: a script not deployed yet is the proxy's
    # warning (its hook fails as its failure_mode says), never a reason not to start.
    blocking = check(config).blocking
    if blocking:
        raise LaunchError("\n".join(blocking))
    if token:
        # Through the environment, not --set, so it does not show in the process list.
        os.environ[TOKEN_ENV] = token
    from mitmproxy.tools.main import mitmdump

    args = mitmdump_args(config, listen_host, listen_port, api, modes, extra, events, api_hosts)
    return mitmdump(args) or 0
