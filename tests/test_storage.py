"""The loopback storage node (``wsgi_reproxy.run.storage``) the demo, the
examples and the end-to-end tests fetch from: validators, ranges, keep-alive,
and a clean stop."""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import time
import warnings
from collections.abc import Iterator

import pytest

from wsgi_reproxy.run.storage import StorageNode, closed_port_url, generated_bytes

DATA = generated_bytes(300_000, "storage")
FILES = {"a.bin": DATA, "dir/b.txt": b"hello\n"}


@pytest.fixture
def node() -> Iterator[StorageNode]:
    with StorageNode(FILES) as running:
        yield running


def request(
    node: StorageNode, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(node.host, node.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_get_serves_the_file_with_validators(node: StorageNode) -> None:
    status, headers, body = request(node, "GET", "/a.bin")
    assert (status, body) == (200, DATA)
    assert headers["Content-Length"] == str(len(DATA))
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["ETag"].startswith('"')
    assert headers["Last-Modified"].endswith("GMT")
    assert headers["Accept-Ranges"] == "bytes"
    assert node.url("a.bin") == f"http://127.0.0.1:{node.port}/a.bin"
    assert node.requests == [("GET", "/a.bin", None)]


def _etag(node: StorageNode) -> str:
    return request(node, "HEAD", "/a.bin")[1]["ETag"]


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        pytest.param({"Range": "bytes=10-19"}, 206, DATA[10:20], id="range"),
        pytest.param({"Range": "bytes=-5"}, 206, DATA[-5:], id="suffix-range"),
        pytest.param({"Range": "bytes=999999-"}, 416, b"", id="unsatisfiable"),
        pytest.param({"Range": "lines=1-2"}, 200, DATA, id="other-unit-ignored"),
        pytest.param({"If-None-Match": "ETAG"}, 304, b"", id="if-none-match"),
        pytest.param({"If-None-Match": '"other"'}, 200, DATA, id="etag-differs"),
        pytest.param(
            {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
            304,
            b"",
            id="not-modified-since",
        ),
        pytest.param(
            {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
            200,
            DATA,
            id="modified-since",
        ),
        pytest.param(
            {"Range": "bytes=0-3", "If-Range": "ETAG"}, 206, DATA[:4], id="if-range"
        ),
        pytest.param(
            {"Range": "bytes=0-3", "If-Range": '"stale"'},
            200,
            DATA,
            id="stale-if-range-gets-all",
        ),
    ],
)
def test_conditional_and_range_requests(
    node: StorageNode, headers: dict[str, str], status: int, body: bytes
) -> None:
    etag = _etag(node)
    sent = {k: v.replace("ETAG", etag) for k, v in headers.items()}
    got_status, got_headers, got_body = request(node, "GET", "/a.bin", sent)
    assert (got_status, got_body) == (status, body)
    if status == 206:
        assert got_headers["Content-Range"].endswith(f"/{len(DATA)}")
    if status == 416:
        assert got_headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_head_has_the_headers_and_no_body(node: StorageNode) -> None:
    status, headers, body = request(node, "HEAD", "/dir/b.txt")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == "6"
    assert headers["Content-Type"] == "text/plain"


def test_unknown_file_is_404(node: StorageNode) -> None:
    assert request(node, "GET", "/nope")[0] == 404


def test_connection_is_kept_alive_between_requests(node: StorageNode) -> None:
    conn = http.client.HTTPConnection(node.host, node.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/dir/b.txt")
            response = conn.getresponse()
            assert response.read() == b"hello\n"
            assert not response.will_close
        local = conn.sock.getsockname()
        conn.request("GET", "/dir/b.txt")
        conn.getresponse().read()
        assert conn.sock.getsockname() == local
    finally:
        conn.close()


def test_client_leaving_mid_body_does_not_disturb_the_node(
    node: StorageNode, capsys: pytest.CaptureFixture[str]
) -> None:
    big = generated_bytes(8 * 1024 * 1024, "big")
    node.files["big.bin"] = big  # type: ignore[index]
    with socket.create_connection((node.host, node.port)) as sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1024)
        # RST instead of FIN, so the server's next write fails at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    assert request(node, "GET", "/dir/b.txt")[2] == b"hello\n"
    _wait_until_no_connection(node)
    # socketserver's default would print a traceback for the reset.
    assert "Traceback" not in capsys.readouterr().err


def test_client_resetting_an_idle_keep_alive_connection_is_not_an_error(
    node: StorageNode, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection((node.host, node.port)) as sock:
        sock.sendall(b"GET /dir/b.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while not received.endswith(b"hello\n"):
            received += sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    _wait_until_no_connection(node)
    assert "Traceback" not in capsys.readouterr().err


def _wait_until_no_connection(node: StorageNode) -> None:
    # A handler thread reports its error before it forgets its connection.
    deadline = time.monotonic() + 10
    while node._server._live:
        assert time.monotonic() < deadline, "connection never closed"
        time.sleep(0.01)


def test_stop_returns_while_a_client_idles_on_keep_alive() -> None:
    node = StorageNode(FILES).start()
    conn = http.client.HTTPConnection(node.host, node.port, timeout=10)
    try:
        conn.request("GET", "/dir/b.txt")
        conn.getresponse().read()
        started = time.monotonic()
        node.stop()
        node.stop()  # idempotent
        # Not the handler's 30 s idle timeout: stop() drops the connection.
        assert time.monotonic() - started < 5
    finally:
        conn.close()


def test_stop_in_a_forked_child_only_closes_the_socket(node: StorageNode) -> None:
    # The demo's gunicorn workers unwind through the arbiter's finally
    # clause; waiting there for the parent's thread would hang the worker.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork + threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        node.stop()
        os._exit(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("stop() hung in the forked child")
    # The parent's node still serves.
    assert request(node, "GET", "/dir/b.txt")[0] == 200


def test_each_request_is_logged_at_info(
    node: StorageNode, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wsgi_reproxy.run.storage"):
        request(node, "GET", "/dir/b.txt")
    assert any("GET /dir/b.txt HTTP/1.1" in r.getMessage() for r in caplog.records)


def test_closed_port_url_refuses_connections() -> None:
    url = closed_port_url("/x")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
