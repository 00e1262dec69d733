"""Remote hooks: a hook whose `script.subdomain` names a service of the same container that has
an `upstream` is served by that service over HTTP.

The proxy POSTs protocol v1's event as JSON to `upstream + script.path` and reads the answer's
body exactly as a per-run script's stdout (`engine.judge`: the same answers, the same outcomes;
an empty body carries on). A non-2xx status, a body that is not such an answer, a refused
connection and the hook's timeout are failed runs, judged by the hook's failure mode like any
other. `script.execId`, when set, goes along as the `X-Proxy-Hooks-Exec-Id` header.

Which hooks are remote: `addon.validation.remote_url` (no aiohttp there: the domain modules
never import it). One aiohttp client session per proxy (pooled keep-alive connections, created on first use on
the running loop). Each run is its own request under its own deadline: a hook service that
hangs holds only the flows waiting on it, each until its own timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from addon.scripts import MAX_STDOUT, RunResult

EXEC_ID_HEADER = "X-Proxy-Hooks-Exec-Id"
# A bearer token the proxy sends to every hook service (`proxy-hooks hook-server --token`).
TOKEN_ENV = "PROXY_HOOKS_REMOTE_TOKEN"
MAX_ERROR_BODY = 300
# Connections kept per proxy: many hook services, or one under many concurrent flows.
POOL_LIMIT = 256


class RemoteHooks:
    """The HTTP client of remote hooks (one per proxy, and one per control API for dry runs)."""

    def __init__(self, token: str | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.token = os.environ.get(TOKEN_ENV) if token is None else token

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=POOL_LIMIT, limit_per_host=0, keepalive_timeout=30)
            # No cookies, no proxy from the environment, no auto-decompressed surprises.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._session

    async def call(
        self, url: str, event: Mapping[str, Any], exec_id: str | None, timeout_s: float
    ) -> RunResult:
        """One run: POST the event, read the answer, within `timeout_s` all told."""
        started = time.monotonic()
        headers = {"content-type": "application/json"}
        if exec_id is not None:
            headers[EXEC_ID_HEADER] = exec_id
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        body = json.dumps(event).encode()

        def failed(reason: str | None = None, timed_out: bool = False) -> RunResult:
            elapsed = (time.monotonic() - started) * 1000
            return RunResult(None, b"", b"", elapsed, timed_out=timed_out, error=reason, remote=True)

        try:
            async with asyncio.timeout(timeout_s):
                client = self._client()
                async with client.post(url, data=body, headers=headers, allow_redirects=False) as answer:
                    status, content = answer.status, await _read_bounded(answer.content)
        except TimeoutError:
            return failed(timed_out=True)
        except (aiohttp.ClientError, OSError) as exc:
            return failed(f"hook service {url} unreachable: {type(exc).__name__}: {exc}")
        if not 200 <= status < 300:
            excerpt = content[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
            return failed(f"hook service {url} answered {status}" + (f": {excerpt}" if excerpt else ""))
        if len(content) > MAX_STDOUT:
            return failed(f"hook service {url} answered over {MAX_STDOUT} bytes")
        return RunResult(0, content, b"", (time.monotonic() - started) * 1000, remote=True)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


async def _read_bounded(stream: aiohttp.StreamReader) -> bytes:
    """The body, or its first MAX_STDOUT + 1 bytes (then it is over the limit)."""
    content = b""
    while len(content) <= MAX_STDOUT:
        chunk = await stream.read(64 * 1024)
        if not chunk:
            break
        content += chunk
    return content
