"""Running the control API: where it listens and who may call it.

Loopback by default. Any other address needs a bearer token, because the API edits what code
the proxy runs; the check happens before anything binds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import signal
import socket

from aiohttp import web

from addon.containers import Containers
from addon.event_recorder import EventRecorder
from addon.sessions import SessionPool
from control_api.app import ApiSettings, make_app

TOKEN_ENV = "PROXY_HOOKS_API_TOKEN"
DEFAULT_LISTEN = "127.0.0.1:8082"


class ListenError(ValueError):
    pass


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[v6]:PORT`; port 0 picks a free port."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ListenError(f"listen address must be HOST:PORT (e.g. 127.0.0.1:8082), got {value!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(given: str | None) -> str:
    return given if given is not None else os.environ.get(TOKEN_ENV, "")


def check_listen(host: str, token: str) -> None:
    if not is_loopback(host) and not token:
        raise ListenError(
            f"refusing to serve the control API on {host!r} without a token: anyone who reaches "
            f"it could change what the proxy runs. Pass --token (or set {TOKEN_ENV}; for the addon, "
            f"--set hooks_api_token=…); clients then send 'Authorization: Bearer <token>'. "
            f"Or listen on 127.0.0.1."
        )


async def start_api(
    containers: Containers,
    host: str,
    port: int,
    settings: ApiSettings,
    events: EventRecorder | None = None,
) -> web.AppRunner:
    """Start the API on the running loop; `runner.addresses` has the real port."""
    check_listen(host, settings.token)
    app = make_app(containers, dataclasses.replace(settings, listen_host=host), events)
    return await start_runner(app, host, port)


async def start_runner(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port from the running loop (cleaned up again if it cannot listen)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def run_until_signalled(runner: web.AppRunner) -> None:
    """Serve until SIGINT or SIGTERM, then clean the runner up (the command-line servers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def describe_addresses(runner: web.AppRunner) -> list[str]:
    urls = []
    for address in runner.addresses:
        host, port = address[0], address[1]
        urls.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
    return urls


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, synchronously, so that "address in use" is an error at
    start-up (mitmproxy exits on errors logged while it starts) rather than later in a task."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


async def serve_socket(
    containers: Containers,
    sock: socket.socket,
    settings: ApiSettings,
    events: EventRecorder | None = None,
    live_sessions: SessionPool | None = None,
) -> tuple[web.AppRunner, asyncio.Server]:
    """Serve the API on an already bound socket. Closing the returned server stops listening
    at once (synchronously); `runner.cleanup()` then finishes open requests."""
    app = make_app(containers, settings, events, live_sessions)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    assert runner.server is not None
    server = await asyncio.get_running_loop().create_server(runner.server, sock=sock)
    return runner, server


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
