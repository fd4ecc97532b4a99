"""A small storage node: the kind of server ``X-Reproxy-Url`` points at.

Perlbal deployments reproxy to MogileFS ``mogstored`` nodes: plain HTTP/1.1
file servers with keep-alive, ``Range`` and validators.  :class:`StorageNode`
is that, in memory and on loopback, for the ``demo`` command, the examples
and the tests::

    from wsgi_reproxy.run.storage import StorageNode

    with StorageNode({"42.fid": b"hello"}) as node:
        print(node.url("42.fid"))   # http://127.0.0.1:PORT/42.fid

It answers ``GET`` and ``HEAD`` with ``Content-Length``, ``ETag`` and
``Last-Modified``; single byte ranges (``206``/``416``), ``If-Range``,
``If-None-Match`` and ``If-Modified-Since`` (``304``).  It is not a
production file server.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from werkzeug.http import http_date, parse_date, parse_etags, parse_range_header

logger = logging.getLogger(__name__)

_Request = socket.socket | tuple[bytes, socket.socket]

#: Bytes written per ``send`` call while streaming a body.
_CHUNK = 64 * 1024


def generated_bytes(size: int, seed: str) -> bytes:
    """Return *size* deterministic pseudo-random bytes for *seed*.

    The demo and the tests regenerate the same content to check sha256 sums.
    """
    return random.Random(seed).randbytes(size)


def closed_port_url(path: str = "/") -> str:
    """Return a loopback URL where nothing listens: a dead storage node.

    The port was bound and released, so a connection is refused (it could be
    reused by another program later, which is good enough for a demo).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients keep connections alive, as mogstored does; every
    # response carries Content-Length, which keep-alive needs.
    protocol_version = "HTTP/1.1"
    server: _Server
    # An idle keep-alive connection is dropped after this many seconds.
    timeout = 30

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, *, send_body: bool) -> None:
        name = unquote(urlsplit(self.path).path).lstrip("/")
        self.server.record(self.command, "/" + name, self.headers.get("Range"))
        data = self.server.files.get(name)
        if data is None:
            self._send(404, b"not found\n", {"Content-Type": "text/plain"}, send_body)
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        validators = {
            "ETag": etag,
            "Last-Modified": http_date(self.server.mtime),
            "Accept-Ranges": "bytes",
        }
        if self._not_modified(etag):
            self._send(304, b"", validators, send_body=False)
            return
        headers = {"Content-Type": self.server.content_type(name), **validators}
        total = len(data)
        byte_range = parse_range_header(self.headers.get("Range"))
        # RFC 9110 §14.2: a range unit the server does not know is ignored.
        if byte_range is not None and byte_range.units != "bytes":
            byte_range = None
        if byte_range is not None and self._if_range_holds(etag):
            span = byte_range.range_for_length(total)
            if span is None:
                # RFC 9110 §15.5.17: 416 names the current length.
                headers["Content-Range"] = f"bytes */{total}"
                self._send(416, b"", headers, send_body)
                return
            start, stop = span
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
            self._send(206, data[start:stop], headers, send_body)
            return
        self._send(200, data, headers, send_body)

    def _not_modified(self, etag: str) -> bool:
        # RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return parse_etags(if_none_match).contains_weak(etag.strip('"'))
        since = parse_date(self.headers.get("If-Modified-Since"))
        return since is not None and int(self.server.mtime) <= since.timestamp()

    def _if_range_holds(self, etag: str) -> bool:
        # RFC 9110 §13.1.5: a Range with a stale If-Range gets the whole file.
        if_range = self.headers.get("If-Range")
        return if_range is None or if_range.strip() == etag

    def _send(
        self, status: int, body: bytes, headers: dict[str, str], send_body: bool
    ) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not send_body:
            return
        try:
            view = memoryview(body)
            for offset in range(0, len(view), _CHUNK):
                self.wfile.write(view[offset : offset + _CHUNK])
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-body (a reproxy that gave up early).
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.info(
            "storage %s:%s %s %s",
            self.server.host,
            self.server.port,
            self.requestline,
            code,
        )

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("storage: " + format, *args)


class _Server(ThreadingHTTPServer):
    # Join handler threads on close so a test sees no thread or socket leak.
    daemon_threads = False
    block_on_close = True

    def __init__(self, node: StorageNode, host: str, port: int) -> None:
        self.node = node
        self.files = node.files
        self.mtime = node.mtime
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        super().__init__((host, port), _Handler)
        self.host, self.port = self.server_address[:2]

    def content_type(self, name: str) -> str:
        guessed = mimetypes.guess_type(name)[0]
        return guessed or "application/octet-stream"

    def record(self, method: str, path: str, range_header: str | None) -> None:
        self.node.requests.append((method, path, range_header))

    # socketserver's request is a socket for TCP (a tuple only for UDP).
    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._live_lock:
                self._live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self._live_lock:
                self._live.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: _Request, client_address: Any) -> None:
        # A client that resets its connection (a reproxy that gave up, a
        # pool discarding a half-read body) is routine for a storage node,
        # not a traceback on stderr; anything else is logged, not printed.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            logger.debug("storage: %s from %s", error, client_address)
        else:
            logger.exception("storage: error serving %s", client_address)

    def drop_connections(self) -> None:
        """Wake handler threads idling on keep-alive connections."""
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class StorageNode:
    """A threaded in-memory HTTP/1.1 file server on loopback.

    :param files: file name (the URL path without its leading ``/``) to
        content.  The mapping is read on every request, so adding files later
        works.
    :param host: address to bind; loopback by default.
    :param port: port to bind; ``0`` picks a free one (see :attr:`port`).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    :attr:`requests` records ``(method, path, Range header)`` per request.
    """

    def __init__(
        self, files: Mapping[str, bytes], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.files = files
        # Whole seconds: Last-Modified has one-second resolution.
        self.mtime = float(int(time.time()))
        self.requests: list[tuple[str, str, str | None]] = []
        self._server = _Server(self, host, port)
        self._thread: threading.Thread | None = None
        # A forked child (a gunicorn worker) has the listening socket but not
        # the serving thread; see stop().
        self._owner_pid = os.getpid()

    @property
    def host(self) -> str:
        return str(self._server.host)

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, name: str) -> str:
        """The URL of file *name* on this node."""
        return f"{self.base_url}/{name}"

    def start(self) -> StorageNode:
        """Serve in a background thread; return ``self``."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"storage-node-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and join every thread.

        Safe to call twice.  In a forked child (the demo's gunicorn workers
        unwind through the arbiter's frames) it only closes the inherited
        listening socket: waiting for a thread that only exists in the parent
        would hang.
        """
        if os.getpid() != self._owner_pid:
            self._server.socket.close()
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.drop_connections()
        self._server.server_close()

    def __enter__(self) -> StorageNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
