"""The `proxy-hooks` command: `run` (the proxy and its control API), `api` (the API alone),
`explain` and `check` (hooks files, offline) and `addon-path` (the file `mitmdump -s` loads).
`proxy-hooks --help` lists them with one line each; `run --help` lists the addon's options too."""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import sys
import textwrap
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from addon.containers import ConfigError, Containers, check, read_only_snapshots
from addon.event_location import default_events_path
from addon.event_recorder import EventRecorder
from addon.event_stores import open_event_store
from addon.explain import MatchQuery, explain
from addon.matching import CompiledContainer
from addon.paths import ENCODED_SLASH_MODES
from addon.store import is_database_url
from addon.validation import problems_from
from control_api import apply_cli, db_cli, hook_server
from control_api.app import ApiSettings
from control_api.hosts import parse_hosts
from control_api.server import (
    DEFAULT_LISTEN,
    TOKEN_ENV,
    ListenError,
    check_listen,
    describe_addresses,
    parse_listen,
    resolve_token,
    run_until_signalled,
    start_api,
)

API_HOST_HELP = (
    "a Host name the control API answers to besides its listen address and localhost/127.0.0.1/"
    "[::1] with its port, repeatable: NAME (any port) or NAME:PORT; any other Host gets 421"
)


# `make run` sets this, so that a taken port is named with the make variable that moves it too.
VIA_MAKE_ENV = "PROXY_HOOKS_VIA_MAKE"
# The addon's options that `run` sets from its own flags.
RUN_FLAGS = {
    "hooks_config": "--config",
    "hooks_api": "--api",
    "hooks_api_token": "--token",
    "hooks_api_hosts": "--api-host",
    "hooks_events": "--events",
}


class _Parser(argparse.ArgumentParser):
    """A parser whose help may end with text made only when help is asked for (the addon's
    options: reading them imports mitmproxy)."""

    def __init__(self, *args: Any, late_epilog: Callable[[], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.late_epilog = late_epilog

    def format_help(self) -> str:
        text = super().format_help()
        return text + "\n" + self.late_epilog() if self.late_epilog else text


def _version() -> str:
    import mitmproxy.version

    try:
        ours = importlib.metadata.version("proxy-hooks")
    except importlib.metadata.PackageNotFoundError:  # run from a clone that was never installed
        ours = "(not installed)"
    return f"proxy-hooks {ours} (mitmproxy {mitmproxy.version.VERSION}, Python {platform.python_version()})"


def _addon_options_help() -> str:
    """`run --help`'s list of the addon's options, from the addon's own declarations."""
    from addon.launcher import addon_options

    width = min(100, max(60, shutil.get_terminal_size().columns)) - 8
    lines = ["addon options (mitmdump --set NAME=VALUE; run passes them on):"]
    for option in addon_options():
        default = "unset" if option.default is None else json.dumps(option.default)
        flag = f"; run sets it from {RUN_FLAGS[option.name]}" if option.name in RUN_FLAGS else ""
        lines.append(f"  {option.name} ({option.type}, default {default}{flag})")
        lines += textwrap.wrap(option.help, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="proxy-hooks",
        description="Programmable hooks in front of HTTP services: a mitmproxy addon and its control API.",
    )
    parser.add_argument("--version", action="version", version=_version())
    # Each command's help fits one line of an 80-column terminal (tests/test_cli.py).
    commands = parser.add_subparsers(dest="command", required=True, title="commands")
    _add_run(commands)
    _add_api(commands)
    _add_explain(commands)
    _add_check(commands)
    hook_server.add_command(commands, API_HOST_HELP, TOKEN_ENV)
    apply_cli.add_commands(commands, TOKEN_ENV)
    db_cli.add_commands(commands)
    commands.add_parser(
        "addon-path",
        help="print the file to load with mitmdump -s",
        description="Print the path of the addon file inside this installation, for "
        'mitmdump -s "$(proxy-hooks addon-path)" --set hooks_config=PATH.',
    )
    return parser


def _add_api(commands: Any) -> None:
    api = commands.add_parser("api", help="the control API alone, without a proxy")
    api.add_argument(
        "--config",
        required=True,
        type=config_arg,
        help="a container hooks file, or a folder of them (one container each), or a PostgreSQL "
        "database holding the containers: postgresql://USER@HOST:PORT/DBNAME (see `db`)",
    )
    api.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN}; port 0 picks one)",
    )
    api.add_argument(
        "--token", default=None, help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV})"
    )
    api.add_argument(
        "--allow-inline-scripts",
        action="store_true",
        help="let the dry-run endpoint run script source sent in the request (off by default)",
    )
    api.add_argument(
        "--api-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help=API_HOST_HELP,
    )
    api.add_argument(
        "--encoded-slashes",
        choices=ENCODED_SLASH_MODES,
        default="reject",
        help="read %%2F, %%5C and \\ in explained and dry-run paths as the proxies do "
        "(their hooks_encoded_slashes; default reject)",
    )
    api.add_argument(
        "--events",
        default=None,
        help="the events store a proxy records into, to serve events and stats from: a SQLite "
        "file, or a postgresql:// URL that many proxies share; "
        "default: that of --config if a proxy has made one (see hooks_events), else none; empty: none",
    )


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="the proxy (mitmdump with the addon) and its API",
        description="Run mitmdump with the proxy-hooks addon and its control API, the "
        "configuration checked first. Options it does not know are passed to mitmdump, "
        "e.g. --set block_global=false.",
        late_epilog=_addon_options_help,
    )
    run.add_argument(
        "--config",
        required=True,
        type=config_arg,
        help="a container hooks file, or a folder of them (one container each), or a PostgreSQL "
        "database holding the containers: postgresql://USER@HOST:PORT/DBNAME (see `db`)",
    )
    run.add_argument("--listen-host", default="127.0.0.1", help="proxy address (default 127.0.0.1)")
    run.add_argument("--listen-port", type=int, default=8080, help="proxy port (default 8080)")
    run.add_argument(
        "--api",
        default=DEFAULT_LISTEN,
        help=f"control API HOST:PORT (default {DEFAULT_LISTEN}; empty: no API)",
    )
    run.add_argument("--token", default=None, help=f"control API bearer token (default: ${TOKEN_ENV})")
    run.add_argument(
        "--api-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help=API_HOST_HELP + " (passed to mitmdump as --set hooks_api_hosts=…)",
    )
    run.add_argument(
        "--events",
        default=None,
        help="SQLite file recording every hook run, or a postgresql:// URL of a database many "
        "proxies share (default: beside the hooks, <config folder>/.proxy-hooks/events.db; see "
        "hooks_events); empty: none",
    )
    run.add_argument(
        "--mode",
        action="append",
        default=[],
        help="mitmproxy mode, repeatable: regular, reverse:http://host:port, …",
    )


def _add_explain(commands: Any) -> None:
    exp = commands.add_parser("explain", help="which service and hook a request would get, and why")
    exp.add_argument("--config", required=True, type=Path, help="a container hooks file, or a folder of them")
    exp.add_argument("--url", required=True, help="the request's URL, e.g. http://auth.demo.test/v1/login")
    exp.add_argument("--method", default="GET", help="the request's method (default GET)")
    exp.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="a request header, repeatable"
    )
    exp.add_argument("--host-header", default=None, help="the Host header, when it differs from the URL's")
    exp.add_argument("--sni", default=None, help="the TLS server name the client sends, if any")
    exp.add_argument(
        "--encoded-slashes",
        choices=ENCODED_SLASH_MODES,
        default="reject",
        help="as the proxy's hooks_encoded_slashes (default reject)",
    )
    exp.add_argument("--client", default="127.0.0.1", help="the client's address (default 127.0.0.1)")
    exp.add_argument("--user", default=None, help="the client's proxy-auth user")


def _add_check(commands: Any) -> None:
    chk = commands.add_parser("check", help="validate hooks files without changing them")
    chk.add_argument("paths", nargs="+", type=Path, help="hooks files or folders of them")


def config_arg(value: str) -> str | Path:
    """--config: a PostgreSQL URL as given (a Path would fold its `//`), else a path."""
    return value if is_database_url(value) else Path(value)


def _events_reader(path: str | None, config: str | Path) -> EventRecorder | None:
    """The standalone API reads events some proxy recorded; it records none itself. A store
    it cannot use now is answered with 503 until it is usable (the proxy recreates it).
    Without --events: the configuration's own store when a proxy has made one; nothing is
    created."""
    if path is None and is_database_url(config):
        return None  # a database has no folder to find a proxy's events beside
    if path is None:
        found = default_events_path(Path(config))
        if not found.exists():
            print(
                f"proxy-hooks api: no events recorded for {config} yet (none at {found}); events "
                "answer 503 (--events PATH names a store)",
                file=sys.stderr,
            )
            return None
        return EventRecorder(open_event_store(found))
    if not path:
        return None
    try:
        store = open_event_store(path)
    except RuntimeError as exc:  # PostgreSQL without psycopg
        raise SystemExit(f"proxy-hooks api: --events: {exc}") from None
    events = EventRecorder(store)
    try:
        events.store.create()
    except events.store.errors as exc:
        print(
            f"proxy-hooks api: events store {events.store.location} unusable ({exc}); events answer "
            "503 until it is",
            file=sys.stderr,
        )
    return events


async def _serve(
    containers: Containers, host: str, port: int, settings: ApiSettings, events: EventRecorder | None
) -> None:
    runner = await start_api(containers, host, port, settings, events)
    names = ", ".join(f"{name} v{store.last_good.version}" for name, store in containers if store.last_good)
    for url in describe_addresses(runner):
        print(f"proxy-hooks api listening on {url} (containers: {names})", flush=True)
    await run_until_signalled(runner)


def _run_api(args: argparse.Namespace) -> int:
    try:
        host, port = parse_listen(args.listen)
        token = resolve_token(args.token)
        check_listen(host, token)
        api_hosts = parse_hosts(args.api_host)
        containers = Containers.load(args.config)
    except (ListenError, ValueError) as exc:
        print(f"proxy-hooks api: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print("proxy-hooks api: cannot load the hooks configuration:", file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        return 2
    try:
        settings = ApiSettings(token, args.allow_inline_scripts, tuple(api_hosts), None, args.encoded_slashes)
        asyncio.run(_serve(containers, host, port, settings, _events_reader(args.events, args.config)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"proxy-hooks api: port {port} is in use; pick another with --listen HOST:PORT",
                file=sys.stderr,
            )
        else:
            print(f"proxy-hooks api: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _run_check(args: argparse.Namespace) -> int:
    failed = False
    for path in args.paths:
        report = check(path)
        for line in [*report.good, *report.errors]:
            print(line)
        failed = failed or bool(report.errors)
    return 1 if failed else 0


def _run_proxy(args: argparse.Namespace, extra: list[str]) -> int:
    from addon.launcher import LaunchError, PortInUse, launch

    try:
        api_hosts = parse_hosts(args.api_host)
    except ValueError as exc:
        print(f"proxy-hooks run: --api-host: {exc}", file=sys.stderr)
        return 2
    try:
        return launch(
            args.config,
            args.listen_host,
            args.listen_port,
            args.api,
            args.mode,
            extra,
            args.token,
            args.events,
            api_hosts,
        )
    except PortInUse as exc:
        via_make = f" (make run {exc.setting}=…)" if exc.setting and os.environ.get(VIA_MAKE_ENV) else ""
        print(f"proxy-hooks: {exc}{via_make}", file=sys.stderr)
        return 2
    except LaunchError as exc:
        print(f"proxy-hooks run: cannot load the hooks configuration:\n{exc}", file=sys.stderr)
        return 2


def _run_explain(args: argparse.Namespace) -> int:
    url = urllib.parse.urlsplit(args.url)
    if not url.hostname:
        print(f"proxy-hooks explain: --url needs a host, got {args.url!r}", file=sys.stderr)
        return 2
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            print(f"proxy-hooks explain: --header must be NAME:VALUE, got {header!r}", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    try:
        query = MatchQuery.model_validate(
            {
                "host": url.netloc.rsplit("@", 1)[-1],
                "method": args.method,
                "path": (url.path or "/") + (f"?{url.query}" if url.query else ""),
                "headers": headers,
                "client": {"address": args.client, "user": args.user},
                "host_header": args.host_header,
                "sni": args.sni,
            }
        )
        containers = [CompiledContainer.compile(s) for s in read_only_snapshots(args.config)]
    except ValidationError as exc:
        for problem in problems_from(exc, MatchQuery):
            print(f"proxy-hooks explain: {problem}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print("proxy-hooks explain: cannot load the hooks configuration:\n" + str(exc), file=sys.stderr)
        return 2
    print(json.dumps(explain(containers, query, args.encoded_slashes), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args, extra = _parser().parse_known_args(argv)
    if args.command == "run":
        return _run_proxy(args, extra)
    if extra:
        _parser().error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "api":
        return _run_api(args)
    if args.command == "explain":
        return _run_explain(args)
    if args.command == "hook-server":
        return hook_server.run_command(args)
    if args.command == "apply":
        return apply_cli.run_apply(args, TOKEN_ENV)
    if args.command == "export":
        return apply_cli.run_export(args, TOKEN_ENV)
    if args.command == "db":
        return db_cli.run(args)
    if args.command == "addon-path":
        from addon.launcher import ADDON_ENTRY

        print(ADDON_ENTRY)
        return 0
    return _run_check(args)


if __name__ == "__main__":
    sys.exit(main())
