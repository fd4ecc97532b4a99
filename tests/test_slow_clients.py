"""Slow clients under ``serve``'s defaults (issue 12): real gunicorn, real
sockets.  A download longer than gunicorn's ``--timeout`` completes; small
requests answer while slow downloads run; a client that stops reading is
cut after the send timeout and its storage connection closed."""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _processes import Command, gunicorn_quiet_options

from wsgi_reproxy.run import defaults as _defaults
from wsgi_reproxy.run.sendtimeout import SendTimeout, SendTimeoutLog
from wsgi_reproxy.run.storage import StorageNode, generated_bytes

ROOT = Path(__file__).resolve().parent.parent
FLASK_EXAMPLE = ROOT / "examples" / "flask"

#: Bigger than what loopback's socket buffers absorb (tcp_wmem's 4 MiB plus
#: the client's receive buffer), so the worker is still sending long after
#: the request began.
BIG = generated_bytes(12 * 1024 * 1024 + 5, "report.pdf")
SMALL = generated_bytes(2000, "holiday.jpg")
STORED = {"dev1/0/000/042.fid": BIG, "dev1/0/000/043.fid": SMALL}


@pytest.fixture
def storage() -> Iterator[StorageNode]:
    with StorageNode(STORED) as node:
        yield node


def serve(tmp_path: Path, storage: StorageNode, *args: str) -> Command:
    """``serve examples/flask/reproxy.conf app:app``, defaults unless *args*."""
    own = [a for a in args if a.startswith("--send-timeout")]
    rest = [a for a in args if not a.startswith("--send-timeout")]
    return Command(
        [
            "serve",
            *own,
            str(FLASK_EXAMPLE / "reproxy.conf"),
            "app:app",
            "--bind",
            "127.0.0.1:0",
            "--",
            *gunicorn_quiet_options(),
            *rest,
        ],
        tmp_path,
        cwd=FLASK_EXAMPLE,
        env={"STORAGE_NODES": storage.base_url},
    )


def open_download(port: int, name: str, rcvbuf: int = 16384) -> socket.socket:
    """A client with a small receive window that sent its GET."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /download/{name}?token=alice-token HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    )
    return sock


def read_response(sock: socket.socket, *, rate: float | None = None) -> bytes:
    """The whole response, at about *rate* bytes/s if given; then close."""
    data = bytearray()
    start = time.monotonic()
    with sock:
        while piece := sock.recv(65536):
            data += piece
            if rate is not None:
                ahead = len(data) / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    return bytes(data)


def body_of(response: bytes) -> tuple[str, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


@pytest.mark.slow
def test_download_lasting_3x_the_worker_timeout_completes_byte_exact(
    tmp_path: Path, storage: StorageNode
) -> None:
    # serve's defaults but --timeout 2: the download takes >= 6 s.  Under
    # gunicorn's own default (sync) the worker would be killed at 2 s.
    with serve(tmp_path, storage, "--timeout", "2") as server:
        start = time.monotonic()
        response = read_response(
            open_download(server.port, "report.pdf"), rate=len(BIG) / 6.5
        )
        took = time.monotonic() - start
        server.stop()
    status, body = body_of(response)
    assert status == "HTTP/1.1 200 OK"
    assert len(body) == len(BIG)
    assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()
    assert took >= 6
    log = server.stderr()
    assert "Using worker: gevent" in log
    assert "WORKER TIMEOUT" not in log
    assert "Traceback" not in log


@pytest.mark.slow
def test_small_requests_answer_promptly_while_50_slow_downloads_run(
    tmp_path: Path, storage: StorageNode
) -> None:
    with serve(tmp_path, storage) as server:
        slow = [open_download(server.port, "report.pdf") for _ in range(50)]
        try:
            # Every slow client gets its head and first bytes: each one is
            # being served, none waits for a free worker.
            for sock in slow:
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")

            def small(i: int) -> tuple[float, bytes]:
                start = time.monotonic()
                got = read_response(open_download(server.port, "holiday.jpg"))
                return time.monotonic() - start, got

            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                answers = list(pool.map(small, range(10)))
        finally:
            for sock in slow:
                sock.close()
        server.stop()
    for took, response in answers:
        assert body_of(response) == ("HTTP/1.1 200 OK", SMALL)
        assert took < 2.0, f"{took:.2f} s"


@pytest.mark.slow
@pytest.mark.parametrize(
    "worker",
    [
        pytest.param([], id="gevent"),
        pytest.param(["--threads", "4"], id="gthread"),
        pytest.param(["-k", "sync", "--timeout", "60"], id="sync"),
    ],
)
def test_client_that_stops_reading_is_cut_and_its_storage_connection_closed(
    tmp_path: Path, storage: StorageNode, worker: list[str]
) -> None:
    with serve(tmp_path, storage, "--send-timeout=1", *worker) as server:
        with open_download(server.port, "report.pdf") as stalled:
            assert stalled.recv(1024).startswith(b"HTTP/1.1 200 OK")
            # The client reads nothing more: once the sockets' buffers are
            # full the worker's send waits, and 1 s later gives up.
            deadline = time.monotonic() + 15
            while storage._server._live and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not storage._server._live, "storage connection still open"
            # The client connection was closed too: draining what the
            # buffers held ends in EOF (or a reset), short of the file.
            received = 1024
            try:
                while piece := stalled.recv(1 << 20):
                    received += len(piece)
            except ConnectionResetError:
                pass
            assert received < len(BIG)
        server.stop()
    log = server.stderr()
    assert "client took nothing for 1 s (send timeout): connection closed" in log
    assert "Traceback" not in log


# -- in-process: the defaults and the send timeout pieces -----------------------


def _cfg(*options: str) -> Any:
    from gunicorn.config import Config

    cfg = Config()
    parsed = cfg.parser().parse_args(list(options))
    for key, value in vars(parsed).items():
        if value is not None and key != "args":
            cfg.set(key.lower(), value)
    return cfg


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param([], {"worker_class": "gevent"}, id="gevent-by-default"),
        pytest.param(
            ["--threads", "8"], {"worker_class": "gthread"}, id="threads-mean-gthread"
        ),
        pytest.param(
            ["--control-socket", "/tmp/x.ctl"],
            {"worker_class": "gevent", "control_socket_disable": False},
            id="a-control-socket-path-enables-it",
        ),
    ],
)
def test_serve_defaults(options: list[str], expected: dict[str, object]) -> None:
    chosen = _defaults.serve_defaults(_cfg(*options))
    want = {
        "worker_connections": 10_000,
        "control_socket_disable": True,
        "post_worker_init": _defaults.leave_ctrl_c_to_the_arbiter,
        **expected,
    }
    assert chosen == want


def test_without_gevent_falls_back_to_gthread_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_defaults, "gevent_worker_available", lambda: False)
    chosen = _defaults.serve_defaults(_cfg())
    assert (chosen["worker_class"], chosen["threads"]) == ("gthread", 32)
    err = capsys.readouterr().err
    assert "32 slow clients per worker take it down" in err
    assert "pip install 'wsgi_reproxy[serve]'" in err


def test_gevent_worker_unavailable_when_its_import_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _defaults.gevent_worker_available()
    monkeypatch.setitem(__import__("sys").modules, "gunicorn.workers.ggevent", None)
    assert not _defaults.gevent_worker_available()


def test_sync_workers_warn_once_naming_both_consequences(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _defaults.prepare_process(_cfg("-k", "sync", "--timeout", "45"))
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert "one slow client blocks a whole worker" in err
    assert "longer than --timeout (45 s) is killed mid-body" in err


@pytest.mark.parametrize(
    ("soft", "hard", "needed", "result", "set_to"),
    [
        pytest.param(1024, 50_000, 20_256, 20_256, (20_256, 50_000), id="raised"),
        pytest.param(1024, 4096, 20_256, 4096, (4096, 4096), id="up-to-the-hard-limit"),
        pytest.param(30_000, 50_000, 20_256, 30_000, None, id="never-lowered"),
        pytest.param(4096, 4096, 20_256, 4096, None, id="already-at-hard"),
    ],
)
def test_open_file_limit_raised_towards_what_connections_need(
    monkeypatch: pytest.MonkeyPatch,
    soft: int,
    hard: int,
    needed: int,
    result: int,
    set_to: tuple[int, int] | None,
) -> None:
    import resource

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, hard))
    monkeypatch.setattr(
        resource, "setrlimit", lambda which, limits: calls.append(limits)
    )
    assert _defaults.raise_nofile(needed) == result
    assert calls == ([set_to] if set_to else [])


def test_a_low_hard_limit_is_reported_for_one_worker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_defaults, "raise_nofile", lambda needed: 4096)
    _defaults.prepare_process(_cfg("-k", "gevent", "--worker-connections", "10000"))
    err = capsys.readouterr().err
    assert "open files are limited to 4096" in err
    assert "about 1920 concurrent downloads per worker" in err
    # Two workers under a 20,000 limit still hold the box's 10,000: quiet.
    monkeypatch.setattr(_defaults, "raise_nofile", lambda needed: 20_000)
    _defaults.prepare_process(_cfg("-k", "gevent", "-w", "2"))
    assert capsys.readouterr().err == ""


class _Socket:
    timeout: float | None = None

    def settimeout(self, seconds: float) -> None:
        self.timeout = seconds


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [pytest.param(7.5, 7.5, id="set"), pytest.param(0, None, id="zero-leaves-it")],
)
def test_send_timeout_set_on_gunicorns_client_socket(
    seconds: float, expected: float | None
) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        return [b"ok"]

    sock = _Socket()
    wrapped = SendTimeout(app, seconds)
    assert wrapped({"gunicorn.socket": sock}, None) == [b"ok"]  # type: ignore[arg-type]
    assert sock.timeout == expected
    assert wrapped({}, None) == [b"ok"]  # type: ignore[arg-type]  # not gunicorn


@pytest.mark.parametrize(
    ("msg", "exc", "level", "shown", "rewritten"),
    [
        pytest.param(
            "Socket error processing request.",
            TimeoutError("timed out"),
            logging.INFO,
            True,
            True,
            id="timeout-becomes-one-line",
        ),
        pytest.param(
            "Error handling request",
            TimeoutError("timed out"),
            logging.WARNING,
            False,
            True,
            id="dropped-below-info",
        ),
        pytest.param(
            "Socket error processing request.",
            OSError(5, "EIO"),
            logging.INFO,
            True,
            False,
            id="other-errors-untouched",
        ),
    ],
)
def test_send_timeout_log_line(
    monkeypatch: pytest.MonkeyPatch,
    msg: str,
    exc: BaseException,
    level: int,
    shown: bool,
    rewritten: bool,
) -> None:
    log = logging.getLogger("gunicorn.error")
    monkeypatch.setattr(log, "level", log.level)  # restored afterwards
    log.setLevel(level)  # setLevel, not the attribute: it clears the cache
    record = logging.LogRecord(
        "gunicorn.error", logging.ERROR, __file__, 1, msg, (), (type(exc), exc, None)
    )
    assert SendTimeoutLog(60).filter(record) is (shown or not rewritten)
    if rewritten:
        assert record.getMessage() == (
            "client took nothing for 60 s (send timeout): connection closed"
        )
        assert (record.levelname, record.exc_info) == ("INFO", None)
    else:
        assert record.exc_info is not None
