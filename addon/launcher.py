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


def mitmdump_args(
    config: Path,
    listen_host: str,
    listen_port: int,
    api: str,
    modes: Sequence[str],
    extra: Sequence[str],
) -> list[str]:
    args = ["--listen-host", listen_host, "--listen-port", str(listen_port)]
    for mode in modes:
        args += ["--mode", mode]
    return [
        *args,
        # Services may send flows to another upstream, so connect only once the request (and
        # the hook's verdict) is known.
        "--set", "connection_strategy=lazy",
        "-s", str(ADDON_ENTRY),
        "--set", f"hooks_config={config.absolute()}",
        "--set", f"hooks_api={api}",
        *extra,
    ]  # fmt: skip


def launch(
    config: Path,
    listen_host: str,
    listen_port: int,
    api: str,
    modes: Sequence[str],
    extra: Sequence[str],
    token: str | None,
) -> int:
    problems, _ = check(config)
    if problems:
        raise LaunchError("\n".join(problems))
    if token:
        # Through the environment, not --set, so it does not show in the process list.
        os.environ[TOKEN_ENV] = token
    from mitmproxy.tools.main import mitmdump

    return mitmdump(mitmdump_args(config, listen_host, listen_port, api, modes, extra)) or 0
