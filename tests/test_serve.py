"""``wsgi-reproxy serve``: argument handling in-process, real gunicorn in a
subprocess (sync, gthread and gevent workers) serving ``examples/flask``."""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from _processes import Command, gunicorn_quiet_options

from wsgi_reproxy import ReproxyMiddleware, load_config
from wsgi_reproxy.__main__ import build_parser, main
from wsgi_reproxy.run import serve as _serve
from wsgi_reproxy.run.gunicorn import (
    _gevent_reexec,
    make_application,
    share_gunicorn_log,
)
from wsgi_reproxy.run.serve import _gunicorn_options
from wsgi_reproxy.run.storage import StorageNode, closed_port_url, generated_bytes

ROOT = Path(__file__).resolve().parent.parent
FLASK_EXAMPLE = ROOT / "examples" / "flask"
FLASK_CONFIG = load_config(FLASK_EXAMPLE / "reproxy.conf")

#: What examples/flask/app.py's FILES point at on the storage nodes.
STORED = {
    "dev1/0/000/042.fid": generated_bytes(3 * 1024 * 1024 + 17, "report.pdf"),
    "dev1/0/000/043.fid": generated_bytes(200 * 1024, "holiday.jpg"),
}
REPORT = STORED["dev1/0/000/042.fid"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["c", "a"], [], id="nothing-to-pass"),
        pytest.param(
            ["--bind", "127.0.0.1:9", "--workers", "3", "--threads", "2", "c", "a"],
            ["--bind", "127.0.0.1:9", "--workers", "3", "--threads", "2"],
            id="own-flags-become-gunicorn-options",
        ),
        pytest.param(
            ["c", "a", "--", "-k", "gevent", "--timeout", "5"],
            ["-k", "gevent", "--timeout", "5"],
            id="after-double-dash-passed-through",
        ),
        pytest.param(
            ["c", "a", "--bind", "127.0.0.1:9", "--", "-k", "gevent"],
            ["--bind", "127.0.0.1:9", "-k", "gevent"],
            id="flags-after-app-then-double-dash",
        ),
        pytest.param(
            ["--workers", "2", "c", "a", "--", "--workers", "5"],
            ["--workers", "2", "--workers", "5"],
            id="pass-through-comes-last-so-it-wins",
        ),
    ],
)
def test_command_line_maps_to_gunicorn_options(
    argv: list[str], expected: list[str]
) -> None:
    args = build_parser().parse_args(["serve", *argv])
    assert (args.conf, args.app) == ("c", "a")
    assert _gunicorn_options(args) == expected


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory; gunicorn's chdir() edits sys.path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    return tmp_path


def _hello(environ: object, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_options_configure_gunicorn(isolated: Path) -> None:
    options = ["--bind", "127.0.0.1:0", "--workers", "3", "--threads", "2"]
    application = make_application(options, lambda: _hello, FLASK_CONFIG)
    assert application.cfg.bind == ["127.0.0.1:0"]
    assert application.cfg.workers == 3
    assert application.cfg.threads == 2
    assert application.cfg.proc_name == "wsgi-reproxy"


def test_command_line_beats_environment_beats_config_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gunicorn's own precedence, which serve keeps.
    conf = isolated / "gunicorn.conf.py"
    conf.write_text("workers = 4\nkeepalive = 9\n")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 5 --timeout 7")
    options = ["--config", str(conf), "--workers", "3"]
    application = make_application(options, lambda: _hello, FLASK_CONFIG)
    assert application.cfg.workers == 3
    assert application.cfg.timeout == 7
    assert application.cfg.keepalive == 9


def test_settings_override_and_unknown_names_are_skipped(isolated: Path) -> None:
    application = make_application(
        ["--graceful-timeout", "30"],
        lambda: _hello,
        FLASK_CONFIG,
        settings={"graceful_timeout": 3, "no_such_gunicorn_setting": 1},
    )
    assert application.cfg.graceful_timeout == 3


def test_loaded_app_is_wrapped_in_the_middleware(isolated: Path) -> None:
    application = make_application([], lambda: _hello, FLASK_CONFIG)
    wrapped = application.load()
    assert isinstance(wrapped, ReproxyMiddleware)
    assert wrapped.app is _hello


@pytest.mark.parametrize(
    ("worker_class", "execs"),
    [
        pytest.param("sync", False, id="sync-runs-as-is"),
        pytest.param("gthread", False, id="gthread-runs-as-is"),
        pytest.param("gevent", True, id="gevent-restarts-patched"),
        pytest.param("gunicorn.workers.ggevent.GeventWorker", True, id="gevent-path"),
    ],
)
def test_gevent_worker_restarts_the_command_patched_first(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, worker_class: str, execs: bool
) -> None:
    calls: list[tuple[str, list[str], str]] = []

    def fake_execv(path: str, args: list[str]) -> None:
        calls.append((path, args, os.getcwd()))

    monkeypatch.setattr(os, "execv", fake_execv)
    start = str(isolated)
    monkeypatch.chdir("/")  # as if gunicorn's --chdir had moved us
    _gevent_reexec(worker_class, ["serve", "c", "a"], start)
    if not execs:
        assert calls == []
        return
    ((path, args, cwd),) = calls
    assert path == sys.executable
    assert args[1] == "-c"
    assert args[2].startswith("from gevent import monkey; monkey.patch_all();")
    assert args[3:] == ["serve", "c", "a"]
    assert cwd == start


def test_serve_hands_gunicorn_its_options_and_the_app_to_wrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hello_app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'hi']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    calls: list[tuple[list[str], Any, dict[str, Any]]] = []

    def fake_run(options: list[str], load_app: Any, config: Any, **kw: Any) -> None:
        calls.append((list(options), load_app, kw))

    monkeypatch.setattr(_serve, "run_gunicorn", fake_run)
    conf = str(FLASK_EXAMPLE / "reproxy.conf")
    argv = ["serve", conf, "hello_app:app", "--workers", "2", "--", "--timeout", "9"]
    assert main(argv) == 0
    ((options, load_app, kw),) = calls
    assert options == ["--workers", "2", "--timeout", "9"]
    assert kw["proc_name"] == "hello_app:app"
    assert load_app() is sys.modules["hello_app"].app
    # The gevent re-exec's argv parses back to the same gunicorn options.
    again = build_parser().parse_args(kw["argv"])
    assert (again.conf, again.app) == (conf, "hello_app:app")
    assert _gunicorn_options(again) == options


@pytest.mark.parametrize(
    ("root_configured", "shared"),
    [
        pytest.param(False, True, id="nothing-configured-gets-gunicorn-log"),
        pytest.param(True, False, id="configured-logging-left-alone"),
    ],
)
def test_reproxy_log_goes_to_gunicorns_error_log_unless_configured(
    monkeypatch: pytest.MonkeyPatch, root_configured: bool, shared: bool
) -> None:
    root = logging.getLogger()
    ours = logging.getLogger("wsgi_reproxy")
    errors = logging.getLogger("gunicorn.error")
    gunicorn_handler = logging.StreamHandler()
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()] * root_configured)
    monkeypatch.setattr(ours, "handlers", list(ours.handlers))
    monkeypatch.setattr(ours, "level", ours.level)
    monkeypatch.setattr(errors, "handlers", [gunicorn_handler])
    monkeypatch.setattr(errors, "level", logging.DEBUG)
    share_gunicorn_log()
    share_gunicorn_log()  # a reload (HUP) adds nothing twice
    assert ours.handlers.count(gunicorn_handler) == int(shared)
    assert (ours.level == logging.DEBUG) is shared


@pytest.mark.parametrize(
    "state",
    [
        pytest.param("missing", id="without-gevent-gunicorn-reports-it"),
        pytest.param("patched", id="already-patched-runs-as-is"),
    ],
)
def test_gevent_reexec_happens_at_most_once(
    monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    def fail_execv(path: str, args: list[str]) -> None:
        pytest.fail("re-executed")

    monkeypatch.setattr(os, "execv", fail_execv)
    if state == "missing":
        monkeypatch.setitem(sys.modules, "gevent", None)
    else:
        from gevent import monkey

        monkeypatch.setattr(monkey, "is_module_patched", lambda name: True)
    _gevent_reexec("gevent", ["serve", "c", "a"], os.getcwd())


def test_bad_config_exits_1_with_file_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("<Location />\n  AllowReproxy maybe\n</Location>\n")
    # main() returning at all proves gunicorn never ran: its arbiter only
    # ever leaves through SystemExit.
    assert main(["serve", str(conf), "no_such_module:app"]) == 1
    err = capsys.readouterr().err
    assert f"{conf}:2: AllowReproxy must be On or Off" in err


def test_missing_config_exits_1_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.conf"
    assert main(["serve", str(missing), "no_such_module:app"]) == 1
    assert str(missing) in capsys.readouterr().err


def test_without_gunicorn_says_how_to_install_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A None entry in sys.modules makes the import raise ImportError.
    for name in [m for m in sys.modules if m.split(".")[0] == "gunicorn"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gunicorn", None)
    conf = str(FLASK_EXAMPLE / "reproxy.conf")
    assert main(["serve", conf, "app:app"]) == 2
    assert "pip install 'wsgi_reproxy[serve]'" in capsys.readouterr().err


@pytest.mark.slow
def test_bad_config_stops_the_real_command_before_gunicorn_starts(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("ReproxyTimeout soon\n")
    done = subprocess.run(
        [sys.executable, "-m", "wsgi_reproxy", "serve", str(conf), "app:app"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=FLASK_EXAMPLE,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"{conf}:1: ")
    assert "Starting gunicorn" not in done.stderr


@pytest.fixture
def storage() -> Iterator[StorageNode]:
    with StorageNode(STORED) as node:
        yield node


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=30)
    yield pool
    pool.clear()


def serve_flask_example(
    tmp_path: Path, storage: StorageNode, *gunicorn_args: str
) -> Command:
    """``serve examples/flask/reproxy.conf app:app`` on a free port."""
    return Command(
        [
            "serve",
            str(FLASK_EXAMPLE / "reproxy.conf"),
            "app:app",
            "--bind",
            "127.0.0.1:0",
            "--",
            *gunicorn_quiet_options(),
            *gunicorn_args,
        ],
        tmp_path,
        cwd=FLASK_EXAMPLE,
        # A dead node first: every request fails over to the live one.
        env={"STORAGE_NODES": f"{closed_port_url('')} {storage.base_url}"},
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("gunicorn_args", "worker_class", "stop_signal"),
    [
        # SIGTERM is the graceful stop (systemd's); gthread and gevent workers
        # linger up to a keep-alive timeout on it, so they get SIGINT (quick).
        pytest.param(["-k", "sync"], "sync", signal.SIGTERM, id="sync"),
        # The app and middleware are built in the arbiter; the pool must be
        # created after the fork, in each worker (SPEC §5).
        pytest.param(
            ["-k", "sync", "--preload", "--workers", "2"],
            "sync",
            signal.SIGTERM,
            id="sync-preload",
        ),
        pytest.param(["--threads", "4"], "gthread", signal.SIGINT, id="gthread"),
        pytest.param(
            ["--worker-class", "gevent"], "gevent", signal.SIGINT, id="gevent"
        ),
        # serve's default (issue 12).
        pytest.param([], "gevent", signal.SIGINT, id="default-is-gevent"),
    ],
)
def test_worker_class_serves_reproxied_files(
    tmp_path: Path,
    storage: StorageNode,
    http: urllib3.PoolManager,
    gunicorn_args: list[str],
    worker_class: str,
    stop_signal: signal.Signals,
) -> None:
    with serve_flask_example(tmp_path, storage, *gunicorn_args) as server:
        base = f"http://127.0.0.1:{server.port}/download"

        def fetch(i: int) -> tuple[int, str, str]:
            # Alternate the two files so requests overlap on both.
            name, key = [
                ("report.pdf", "dev1/0/000/042.fid"),
                ("holiday.jpg", "dev1/0/000/043.fid"),
            ][i % 2]
            response = http.request("GET", f"{base}/{name}?token=alice-token")
            digest = hashlib.sha256(response.data).hexdigest()
            assert response.status == 200, response.data[:200]
            return i, digest, hashlib.sha256(STORED[key]).hexdigest()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for i, got, want in pool.map(fetch, range(8)):
                assert got == want, f"request {i}"

        ranged = http.request(
            "GET",
            f"{base}/report.pdf?token=alice-token",
            headers={"Range": "bytes=1000000-1000099"},
        )
        assert ranged.status == 206
        assert ranged.data == REPORT[1000000:1000100]
        assert ranged.headers["Content-Range"] == f"bytes 1000000-1000099/{len(REPORT)}"
        assert ranged.headers["Content-Type"] == "application/pdf"

        denied = http.request("GET", f"{base}/report.pdf?token=bob-token")
        assert denied.status == 404
        assert "X-Reproxy-Url" not in denied.headers

        http.clear()
        assert server.stop(stop_signal) == 0
    log = server.stderr()
    assert f"Using worker: {worker_class}" in log
    # Reproxy lines reach gunicorn's error log (share_gunicorn_log).
    assert log.count(f"{storage.base_url}/dev1/") >= 9, log
    # serve re-executes itself patched first for gevent (see _gevent_reexec).
    assert "MonkeyPatchWarning" not in log
    assert "Traceback" not in log
    # Every reproxy reached the live node; the app never served a body.
    assert len(storage.requests) == 9
