"""Loopback target servers for the reproxy tests, and small helpers.

Every server listens on ``127.0.0.1`` port 0 in threads of the test process
and is shut down cleanly (sockets closed, threads joined), so a leak in the
code under test is the only thing ``-W error::ResourceWarning`` can catch.

Fixtures other test files can use:

``target``
    :class:`TargetServer`: files with ETag/Last-Modified/Range/304, plus
    ``/status/N``, ``/redirect?to=URL``, ``/hop``, ``/echo``, ``/gzip``,
    ``/chunked``; it records every request it answered.
``refused_url``
    a URL on a closed loopback port (connection refused).
``stalling_target``
    :class:`RawServer` that reads the request and never answers.
``truncating_target``
    :class:`RawServer` that promises 1000 bytes, sends 500 and closes.
``lying_target``
    :class:`RawServer` whose ``Content-Length`` lies: ``/short`` promises
    more bytes than it sends, ``/long`` sends more than it promises.
``pool``
    a fresh :class:`urllib3.PoolManager`, cleared after the test.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import random
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from werkzeug.http import http_date, parse_etags, parse_range_header

from wsgi_reproxy import Settings

with warnings.catch_warnings():
    # webob (under webtest) imports the stdlib ``cgi`` module, deprecated
    # since Python 3.11; the warning is theirs, not ours, and pytest's
    # filterwarnings=error would turn it into a collection error.
    warnings.simplefilter("ignore", DeprecationWarning)
    import webtest  # noqa: F401

#: The content of ``/files/hello.txt``.
HELLO = b"hello from the target\n"


def make_bytes(size: int, seed: str = "x") -> bytes:
    """Deterministic pseudo-random content, so tests can compare sums."""
    return random.Random(seed).randbytes(size)


@dataclass
class Seen:
    """One request a :class:`TargetServer` answered."""

    method: str
    path: str
    headers: dict[str, str]
    client_port: int


class _TargetHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a storage node
    # Headers and body go out in separate sends; with Nagle's algorithm and
    # the client's delayed ACK every small response would wait 40 ms.
    disable_nagle_algorithm = True
    server: TargetServer
    timeout = 10  # an idle keep-alive connection is dropped after this

    def do_GET(self) -> None:
        self._route(body=True)

    def do_HEAD(self) -> None:
        self._route(body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _route(self, *, body: bool) -> None:
        url = urlsplit(self.path)
        self.server.seen.append(
            Seen(self.command, self.path, dict(self.headers), self.client_address[1])
        )
        if url.path.startswith("/files/"):
            self._file(self.server.root / url.path[len("/files/") :], body)
        elif url.path.startswith("/status/"):
            code = int(url.path.rsplit("/", 1)[1])
            self._send(code, f"status {code}\n".encode(), body)
        elif url.path == "/redirect":
            location = parse_qs(url.query)["to"][0]
            self._send(302, b"moved\n", body, {"Location": location})
        elif url.path == "/hop":
            hop = {
                "Connection": "X-Private",
                "X-Private": "secret",
                "Keep-Alive": "timeout=5",
                "Trailer": "X-Checksum",
                "Set-Cookie": "target=1",
                "X-Reproxy-Url": "http://internal/",
                "X-Target": "yes",
                "Content-Type": "text/plain",
            }
            self._send(200, b"hop\n", body, hop)
        elif url.path == "/echo":
            seen = {"method": self.command, "headers": dict(self.headers)}
            self._send(200, json.dumps(seen).encode(), body)
        elif url.path == "/gzip":
            data = gzip.compress(HELLO)
            self._send(200, data, body, {"Content-Encoding": "gzip"})
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if body:
                for part in (b"chunked ", b"body\n"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, b"no such route\n", body)

    def _send(
        self, code: int, data: bytes, body: bool, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _file(self, path: Path, body: bool) -> None:
        if not path.is_file():
            self._send(404, b"not found\n", body)
            return
        stat = path.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        validators = {"ETag": etag, "Last-Modified": http_date(stat.st_mtime)}
        inm = self.headers.get("If-None-Match")
        if inm is not None and parse_etags(inm).contains_weak(etag.strip('"')):
            self.send_response(304)
            for key, value in validators.items():
                self.send_header(key, value)
            self.end_headers()
            return
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        headers.update(validators)
        start, stop, code = 0, stat.st_size, 200
        ranges = parse_range_header(self.headers.get("Range"))
        if_range = self.headers.get("If-Range")
        if ranges is not None and if_range in (None, etag):
            span = ranges.range_for_length(stat.st_size)
            if span is None:
                headers["Content-Range"] = f"bytes */{stat.st_size}"
                self._send(416, b"", body, headers)
                return
            start, stop, code = span[0], span[1], 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{stat.st_size}"
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        if body:
            with path.open("rb") as f:
                try:
                    self.connection.sendfile(f, start, stop - start)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True


class TargetServer(ThreadingHTTPServer):
    """A well-behaved HTTP/1.1 target with keep-alive (a storage node).

    Files are read from :attr:`root`; :meth:`add_file` creates one.
    :attr:`seen` lists every request answered, in order.
    """

    daemon_threads = False
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Tests hang up mid-body on purpose; a storage node shrugs that off.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _TargetHandler)
        self.root = root
        self.seen: list[Seen] = []
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        """``http://127.0.0.1:PORT`` + *path*."""
        return f"http://127.0.0.1:{self.port}{path}"

    def add_file(self, name: str, data: bytes) -> str:
        """Write ``root/name``; return its URL."""
        (self.root / name).write_bytes(data)
        return self.url("/files/" + name)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self._open.discard(request)
        super().shutdown_request(request)

    def start(self) -> TargetServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        # Idle keep-alive connections would hold handler threads until their
        # timeout; shutting the sockets down ends them now.
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.server_close()
        self._thread.join()


class RawServer:
    """A loopback server that misbehaves on purpose, below HTTP.

    Each connection runs ``handler(conn, request_head, stop_event)`` in a
    thread after the request head was read.
    """

    def __init__(
        self, handler: Callable[[socket.socket, bytes, threading.Event], None]
    ):
        self._handler = handler
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                self._handler(conn, head, self.stop_event)
            except OSError:
                pass

    def start(self) -> RawServer:
        self._accept.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self._accept.join()
        self._sock.close()
        for thread in self._threads:
            thread.join()


def _stall(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
    stop.wait(30)


def _truncate(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
    if head.split(b" ", 2)[1] == b"/big":  # past the read-whole size
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        conn.sendall(b"t" * 500_000)
        return
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"t" * 500)


def _lie(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
    path = head.split(b" ", 2)[1]
    if path == b"/short":  # promises 100, sends 50
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"s" * 50)
    else:  # promises 10, sends 30
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"L" * 30)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetServer]:
    """The well-behaved target; ``/files/hello.txt`` and ``/files/1m.bin``
    (1 MiB, :func:`make_bytes` seed ``"1m"``) exist."""
    server = TargetServer(tmp_path_factory.mktemp("target"))
    server.add_file("hello.txt", HELLO)
    server.add_file("1m.bin", make_bytes(1 << 20, "1m"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def refused_url() -> str:
    """A URL on a loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/files/hello.txt"


@pytest.fixture(scope="session")
def stalling_target() -> Iterator[RawServer]:
    """Accepts, reads the request, never sends a status line."""
    server = RawServer(_stall).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def truncating_target() -> Iterator[RawServer]:
    """Sends ``Content-Length: 1000``, 500 bytes of ``t``, then closes
    (``/big``: says 1,000,000 and sends 500,000)."""
    server = RawServer(_truncate).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lying_target() -> Iterator[RawServer]:
    """``/short``: says 100, sends 50 and closes; ``/long``: says 10, sends 30."""
    server = RawServer(_lie).start()
    yield server
    server.stop()


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    """A private pool, so tests don't share connections; cleared afterwards."""
    manager = urllib3.PoolManager(num_pools=8, maxsize=4)
    yield manager
    manager.clear()


@dataclass
class FixedConfig:
    """A config whose ``resolve()`` always returns the same settings."""

    settings: Settings = field(default_factory=lambda: Settings(allow_reproxy=True))

    def resolve(self, environ: Any) -> Settings:
        return self.settings


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
