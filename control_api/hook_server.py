"""`proxy-hooks hook-server`: the `handle(event)` scripts of a folder served as remote hooks.

`POST /<path>` with protocol v1's event runs `<scripts>/<path>`'s `handle(event)` in an
exec-session worker (Python or JavaScript: the proxy's own hosts, `addon.sessions`) and answers
with its return value as JSON (None: an empty 200, "carry on"). The session is the request's
`X-Proxy-Hooks-Exec-Id` (default `hook-server`), per runtime. A handle that raises, times out or
cannot load is a 502/504 naming why: the calling proxy fails the run as the hook's failure mode
says. The same gate as the control API stands before every request: Host, Origin, the bearer
token (required off loopback), JSON bodies only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from addon.remote_hooks import EXEC_ID_HEADER
from addon.scripts import Runtimes, minimal_env
from addon.sessions import SessionKey, SessionPool, script_stamp, session_runtime
from addon.validation import json_object, resolve_script, script_inside
from control_api.access import access_middleware
from control_api.app import envelope_middleware
from control_api.envelope import ApiError
from control_api.hosts import HostPolicy
from control_api.keys import HOST_POLICY, TOKEN
from control_api.server import check_listen, describe_addresses, run_until_signalled, start_runner

DEFAULT_SESSION = "hook-server"
MAX_EVENT_BYTES = 16 * 1024 * 1024
SCRIPTS = web.AppKey("scripts", Path)
POOL = web.AppKey("pool", SessionPool)
TIMEOUT_S = web.AppKey("timeout_s", float)


def make_hook_server(
    scripts: Path, token: str, host_policy: HostPolicy, timeout_s: float, pool: SessionPool | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[envelope_middleware, access_middleware], client_max_size=MAX_EVENT_BYTES
    )
    app[TOKEN] = token
    app[HOST_POLICY] = host_policy
    app[SCRIPTS] = scripts.absolute()
    app[TIMEOUT_S] = timeout_s
    app[POOL] = pool or SessionPool(Runtimes.detect(), minimal_env())
    app.router.add_post("/{path:.+}", _handle)

    async def close(app: web.Application) -> None:
        app[POOL].close()

    app.on_cleanup.append(close)
    return app


async def _handle(request: web.Request) -> web.StreamResponse:
    root = request.app[SCRIPTS]
    script_path = "/" + request.match_info["path"]
    runtime = session_runtime(script_path)
    script = resolve_script(root, script_path)
    if runtime is None or ".." in script_path.split("/") or not script_inside(root, script_path):
        kinds = ".py, .js, .mjs, .cjs, .ts, .mts"
        raise ApiError(404, f"no handle(event) script at {script_path} ({kinds})", "NOT_FOUND")
    try:
        info = os.stat(script)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise ApiError(404, f"no script at {script_path} in {root.name}/", "NOT_FOUND")
    event = json_object(await request.read())
    exec_id = request.headers.get(EXEC_ID_HEADER) or DEFAULT_SESSION
    key = SessionKey(DEFAULT_SESSION, exec_id, runtime)
    pool = request.app[POOL]
    result = await pool.run(key, script, script_stamp(info), event, request.app[TIMEOUT_S], root)
    if result.timed_out:
        raise ApiError(504, f"{script_path}: handle(event) timed out", "TIMEOUT")
    if result.error:
        raise ApiError(502, f"{script_path}: {result.error}", "HANDLE_FAILED")
    if result.answer is None:
        return web.Response(status=200)
    return web.json_response(result.answer)


async def serve(
    scripts: Path, host: str, port: int, token: str, api_hosts: tuple[str, ...], timeout_s: float
) -> None:
    check_listen(host, token)
    app = make_hook_server(scripts, token, HostPolicy.build(host, api_hosts), timeout_s)
    runner = await start_runner(app, host, port)
    for url in describe_addresses(runner):
        print(f"proxy-hooks hook-server listening on {url} (scripts: {scripts})", flush=True)
    await run_until_signalled(runner)


def add_command(commands: Any, api_host_help: str, token_env: str) -> None:
    server = commands.add_parser("hook-server", help="serve a folder's handle(event) scripts as remote hooks")
    server.add_argument(
        "--scripts", required=True, type=Path, help="the folder of .py/.js/.ts handle(event) scripts"
    )
    server.add_argument(
        "--listen", default="127.0.0.1:9100", help="HOST:PORT to listen on (default 127.0.0.1:9100)"
    )
    server.add_argument(
        "--token", default=None, help=f"require 'Authorization: Bearer TOKEN' (default: ${token_env})"
    )
    server.add_argument("--api-host", action="append", default=[], metavar="NAME[:PORT]", help=api_host_help)
    server.add_argument(
        "--timeout", type=int, default=30_000, help="ms a handle(event) may take (default 30000)"
    )


def run_command(args: argparse.Namespace) -> int:
    from control_api.hosts import parse_hosts
    from control_api.server import ListenError, parse_listen, resolve_token

    try:
        host, port = parse_listen(args.listen)
        token = resolve_token(args.token)
        check_listen(host, token)
        api_hosts = tuple(parse_hosts(args.api_host))
    except (ListenError, ValueError) as exc:
        print(f"proxy-hooks hook-server: {exc}", file=sys.stderr)
        return 2
    if not args.scripts.is_dir():
        print(f"proxy-hooks hook-server: {args.scripts} is not a folder", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args.scripts, host, port, token, api_hosts, args.timeout / 1000))
    except OSError as exc:
        print(
            f"proxy-hooks hook-server: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    return 0
