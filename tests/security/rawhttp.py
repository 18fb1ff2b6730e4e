"""A raw-socket HTTP/1.1 client for the attack tests: it sends headers and part of
a body, then reads the answer without finishing the body (no HTTP library would)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

MIB = 1024 * 1024


class RawAnswer:
    def __init__(self, status: int, body: bytes, sent: int) -> None:
        self.status = status
        self.body = body
        self.sent = sent  # body bytes sent before the answer arrived


def send_partial(
    base_url: str,
    method: str,
    target: str,
    headers: dict[str, str],
    *,
    declared: int | None = 200 * 1000 * 1000,
    send: int = MIB,
    chunked: bool = False,
    timeout: float = 20.0,
) -> RawAnswer:
    """Send the request head (``Content-Length: declared``, or chunked), then up to
    ``send`` body bytes, and return the answer read before the rest is ever sent."""
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif declared is not None:
            lines.append(f"Content-Length: {declared}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        sent = 0
        chunk = b"x" * 65536
        sock.settimeout(0.5)
        while sent < send:
            piece = chunk if not chunked else b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            try:
                sock.sendall(piece)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading: its answer is waiting
            sent += len(chunk)
        sock.settimeout(timeout)
        return RawAnswer(*_read_answer(sock, time.monotonic() + timeout), sent)
    finally:
        sock.close()


def _read_answer(sock: socket.socket, deadline: float) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if time.monotonic() > deadline:
            raise TimeoutError("no answer")
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while not body.endswith(b"0\r\n\r\n") and time.monotonic() < deadline:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
        decoded = b""
        while body:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16) if size_line.strip() else 0
            if not size:
                break
            decoded, body = decoded + body[:size], body[size + 2 :]
        return status, decoded
    while length is not None and len(body) < length and time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not piece:
            break
        body += piece
    return status, body
