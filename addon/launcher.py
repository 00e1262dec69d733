"""`proxy-hooks run`: mitmdump with the addon loaded, without typing mitmproxy options.

The configuration is checked first (nothing written), so a typo is a clear message and exit
code 2 rather than a proxy that starts and refuses every flow. So are the ports: a taken one is
named with the option that moves it, before mitmproxy would suggest a port of its own (its hint
for 8080 is 8082, the control API's).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addon.containers import ConfigError, Containers, check
from control_api.server import TOKEN_ENV, ListenError, bind, parse_listen

# The file `mitmdump -s` loads, inside the installed package (`proxy-hooks addon-path`).
ADDON_ENTRY = Path(__file__).resolve().with_name("proxy_hooks.py")


class LaunchError(Exception):
    pass


class PortInUse(LaunchError):
    """A port the proxy or its API would listen on is taken. `option` is the `run` option that
    moves it; `setting` the `make run` variable that does, if any."""

    def __init__(self, port: int, option: str, setting: str | None, user: str = "") -> None:
        super().__init__(f"port {port} is in use{user}; pick another with {option}")
        self.port, self.option, self.setting = port, option, setting


@dataclass(frozen=True)
class OptionDoc:
    """One option the addon declares, as `mitmdump --set` takes it."""

    name: str
    type: str
    default: Any
    help: str


def addon_options() -> list[OptionDoc]:
    """The addon's options, read from its own declarations (`ProxyHooks.load`)."""
    from mitmproxy.utils.typecheck import typespec_to_str

    from addon.enforcer import ProxyHooks

    found: list[OptionDoc] = []

    class Collect:
        def add_option(self, name: str, typespec: Any, default: Any, help: str, choices: Any = None) -> None:
            found.append(OptionDoc(name, typespec_to_str(typespec), default, help))

    ProxyHooks().load(Collect())
    return found


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
    config: Path | str,
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
        "hooks_config": config if isinstance(config, str) else str(config.absolute()),
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


def _proxy_listeners(host: str, port: int, modes: Sequence[str]) -> Iterator[tuple[str, int, str]]:
    """(host, port, option that moves it) for each TCP listener mitmproxy will open."""
    from mitmproxy.proxy.mode_specs import ProxyMode

    for spec in modes or ["regular"]:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError:
            continue  # mitmproxy says what is wrong with it
        listen_port = mode.listen_port(port)
        if not listen_port or mode.transport_protocol == "udp":
            continue
        option = (
            "--listen-port" if mode.custom_listen_port is None else f"--mode {spec.rpartition('@')[0]}@PORT"
        )
        yield mode.listen_host(host), listen_port, option


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails because something listens there (bound as mitmproxy
    and the API bind: with SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    try:
        bind(host, port).close()
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    return False


def check_ports(listen_host: str, listen_port: int, modes: Sequence[str], api: str) -> None:
    """PortInUse for the first port the proxy or its control API could not listen on."""
    proxy_ports = set()
    for host, port, option in _proxy_listeners(listen_host, listen_port, modes):
        proxy_ports.add(port)
        if port_in_use(host, port):
            raise PortInUse(port, option, "PROXY_PORT" if option == "--listen-port" else None)
    try:
        api_host, api_port = parse_listen(api) if api else ("", 0)
    except ListenError:
        return  # the addon refuses it with the reason
    if api_port in proxy_ports:
        raise PortInUse(api_port, "--api HOST:PORT", "API", " by the proxy itself")
    if api_port and port_in_use(api_host, api_port):
        raise PortInUse(api_port, "--api HOST:PORT", "API")


def launch(
    config: Path | str,
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
    blocking = _database_problems(config) if isinstance(config, str) else check(config).blocking
    if blocking:
        raise LaunchError("\n".join(blocking))
    check_ports(listen_host, listen_port, modes, api)
    if token:
        # Through the environment, not --set, so it does not show in the process list.
        os.environ[TOKEN_ENV] = token
    from mitmproxy.tools.main import mitmdump

    args = mitmdump_args(config, listen_host, listen_port, api, modes, extra, events, api_hosts)
    return mitmdump(args) or 0


def _database_problems(dsn: str) -> list[str]:
    """What stops the addon loading the containers kept in PostgreSQL (it reads them itself)."""
    try:
        Containers.load(dsn).close()
    except ConfigError as exc:
        return exc.lines
    return []
