"""A client that sends exactly the bytes a test writes: HTTP clients normalize URLs (dot segments,
percent-encoding, Host), which is the very thing the attack tests must not have done for them."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def send_raw(
    port: int,
    head: str | bytes,
    body: bytes = b"",
    tunnel: str | None = None,
    sni: str | None = None,
    cafile: Path | None = None,
    timeout: float = 30.0,
) -> RawResponse:
    """Send `head` (request line and headers, CRLF-separated, without the final blank line) and
    `body` to the proxy on 127.0.0.1:`port`; with `tunnel` ("host:port"), inside a CONNECT
    tunnel, over TLS with `sni` as the server name (mitmproxy's CA in `cafile`)."""
    raw_head = head.encode("latin-1", "surrogateescape") if isinstance(head, str) else head
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if tunnel is not None:
            sock.sendall(f"CONNECT {tunnel} HTTP/1.1\r\nHost: {tunnel}\r\n\r\n".encode())
            answer = _read_head(sock)
            if not answer.startswith(b"HTTP/1.1 200"):
                raise AssertionError(f"CONNECT {tunnel} refused: {answer[:200]!r}")
            context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
            context.check_hostname = False  # the test chooses an SNI that may not be the host
            sock = context.wrap_socket(sock, server_hostname=sni)
        if body and b"content-length" not in raw_head.lower():
            raw_head += f"\r\ncontent-length: {len(body)}".encode()
        sock.sendall(raw_head + b"\r\n\r\n" + body)
        method = raw_head.split(b" ", 1)[0].decode("latin-1")  # HEAD: a response without a body
        response = http.client.HTTPResponse(sock, method=method)  # type: ignore[arg-type]
        response.begin()
        data = response.read()
        return RawResponse(
            response.status, response.reason, {k.lower(): v for k, v in response.getheaders()}, data
        )
    finally:
        sock.close()
