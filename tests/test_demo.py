"""``wsgi-reproxy demo``: the app in-process, and the real command started,
fetched from with the requests its banner prints, and stopped cleanly."""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
import signal
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import webtest
from _processes import Command

from wsgi_reproxy import ReproxyMiddleware
from wsgi_reproxy.__main__ import main
from wsgi_reproxy.fetch.fetcher import default_pool
from wsgi_reproxy.run import demo as _demo
from wsgi_reproxy.run.demo import (
    MINIMAL_CONF,
    TOKEN,
    banner,
    demo_config,
    demo_files,
    make_app,
)
from wsgi_reproxy.run.storage import StorageNode, closed_port_url

FILES = demo_files()
ROOT = Path(__file__).resolve().parent.parent


def test_embedded_config_is_sample_conf_minimal() -> None:
    # The fallback for non-editable installs must not drift from the file.
    assert (ROOT / "sample_conf" / "minimal.conf").read_text() == MINIMAL_CONF


def test_demo_config_reproxies_and_preserves_the_apps_headers() -> None:
    config, where = demo_config()
    assert where.endswith("minimal.conf")
    settings = config.resolve({"PATH_INFO": "/files/x", "SCRIPT_NAME": ""})
    assert settings.allow_reproxy
    assert settings.preserve_headers == ("Content-Type", "Content-Disposition")


@pytest.fixture
def demo_client() -> Iterator[tuple[webtest.TestApp, StorageNode]]:
    with StorageNode(FILES) as node:
        app = make_app([closed_port_url(""), node.base_url], FILES)
        config, _ = demo_config()
        yield webtest.TestApp(ReproxyMiddleware(app, config)), node
    default_pool().clear()


@pytest.mark.parametrize(
    ("query", "status", "reached_storage"),
    [
        pytest.param({"token": TOKEN}, 200, True, id="good-token"),
        pytest.param({"token": "wrong"}, 403, False, id="bad-token"),
        pytest.param({}, 403, False, id="no-token"),
    ],
)
def test_app_checks_the_token_before_reproxying(
    demo_client: tuple[webtest.TestApp, StorageNode],
    query: dict[str, str],
    status: int,
    reached_storage: bool,
) -> None:
    client, node = demo_client
    response = client.get("/files/photo.jpg", query, status=status)
    if reached_storage:
        assert response.body == FILES["photo.jpg"]
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["Content-Disposition"] == 'inline; filename="photo.jpg"'
    assert bool(node.requests) is reached_storage


def test_index_lists_the_files(
    demo_client: tuple[webtest.TestApp, StorageNode],
) -> None:
    client, node = demo_client
    text = client.get("/").text
    assert all(f"/files/{name}?token=" in text for name in FILES)
    assert node.requests == []


def test_unknown_file_is_404_from_the_app(
    demo_client: tuple[webtest.TestApp, StorageNode],
) -> None:
    client, node = demo_client
    client.get("/files/nope.txt", {"token": TOKEN}, status=404)
    assert node.requests == []


def test_banner_curl_commands_use_the_real_port() -> None:
    text = banner(4321, "http://127.0.0.1:1", "http://127.0.0.1:2", FILES, "x.conf")
    commands = [line.split("#")[0] for line in text.splitlines() if "curl" in line]
    assert len(commands) == 5
    for command in commands:
        words = shlex.split(command.split("|")[0])
        assert words[0] == "curl"
        assert words[-1].startswith("http://127.0.0.1:4321/files/")


def test_without_flask_says_how_to_install_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)
    assert main(["demo", "--port", "0"]) == 2
    assert "pip install 'wsgi_reproxy[demo]'" in capsys.readouterr().err


def test_without_gunicorn_says_how_to_install_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "gunicorn"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gunicorn", None)
    assert main(["demo", "--port", "0"]) == 2
    assert "pip install 'wsgi_reproxy[demo]'" in capsys.readouterr().err


def test_embedded_config_is_used_without_the_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_demo, "_MINIMAL_CONF_PATH", ROOT / "no" / "such.conf")
    config, where = demo_config()
    assert where == "built-in minimal.conf"
    assert config.resolve({"PATH_INFO": "/", "SCRIPT_NAME": ""}).allow_reproxy


def test_demo_prints_the_banner_when_ready_and_stops_its_storage_node(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # gunicorn itself is exercised by the slow test below; here a stand-in
    # calls the when_ready hook with the listening socket, then "stops".
    seen: dict[str, Any] = {}

    def fake_run(options: list[str], load_app: Any, config: Any, **kw: Any) -> None:
        seen.update(options=options, app=load_app(), settings=kw["settings"])
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", 0))
            server = types.SimpleNamespace(
                LISTENERS=[types.SimpleNamespace(sock=listening)]
            )
            kw["settings"]["when_ready"](server)
            seen["port"] = listening.getsockname()[1]
        raise SystemExit(0)  # how gunicorn's arbiter leaves

    stopped: list[StorageNode] = []
    real_stop = StorageNode.stop

    def recording_stop(self: StorageNode) -> None:
        stopped.append(self)
        real_stop(self)

    monkeypatch.setattr(_demo, "run_gunicorn", fake_run)
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)
    monkeypatch.setattr(StorageNode, "stop", recording_stop)
    with pytest.raises(SystemExit):
        main(["demo", "--port", "0"])
    assert seen["options"][:2] == ["--bind", "127.0.0.1:0"]
    assert seen["settings"]["control_socket_disable"] is True
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{seen['port']}/files/big.bin" in out
    # The storage node is stopped even though gunicorn left via SystemExit.
    assert len(stopped) == 1


#: The banner's last line: printed once gunicorn listens.
READY = re.compile(r"app \(gunicorn\):\s+http://127\.0\.0\.1:(\d+)/[\s\S]*Ctrl-C")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_signal", "group"),
    [
        # Ctrl-C in a terminal signals the whole foreground process group.
        pytest.param(signal.SIGINT, True, id="ctrl-c"),
        # A service manager signals the main process only.
        pytest.param(signal.SIGTERM, False, id="sigterm"),
    ],
)
def test_demo_command_serves_what_it_prints_then_stops_everything(
    tmp_path: Path, stop_signal: signal.Signals, group: bool
) -> None:
    http = urllib3.PoolManager(retries=False, timeout=30)
    with Command(["demo", "--port", "0"], tmp_path, ready=READY) as demo:
        printed = demo.stdout()
        urls = re.findall(r"'(http://127\.0\.0\.1:\d+/files/[^']+)'", printed)
        hello, big, bad, head, ranged = urls
        assert all(f":{demo.port}/" in url for url in urls)
        try:
            got_hello = http.request("GET", hello)
            got_big = http.request("GET", big)
            got_bad = http.request("GET", bad)
            got_head = http.request("HEAD", head)
            got_range = http.request("GET", ranged, headers={"Range": "bytes=0-15"})
        finally:
            http.clear()
        assert demo.stop(stop_signal, group=group) == 0

    assert got_hello.status == 200
    assert got_hello.data == FILES["hello.txt"]
    big_sum = hashlib.sha256(got_big.data).hexdigest()
    assert got_big.status == 200
    assert big_sum == hashlib.sha256(FILES["big.bin"]).hexdigest()
    assert f"sha256sum    # {big_sum}" in printed
    assert got_bad.status == 403
    assert got_head.status == 200
    assert got_head.data == b""
    assert got_head.headers["Content-Length"] == str(len(FILES["big.bin"]))
    assert got_range.status == 206
    assert got_range.data == FILES["hello.txt"][:16]

    # The log shows each reproxy: the dead node's failure, then the live
    # node serving (the middleware's own line, not the storage node's).
    log = demo.stderr()
    storage = re.search(r"storage node:\s+(http://127\.0\.0\.1:\d+)", printed)
    assert storage is not None
    served = [
        line
        for line in log.splitlines()
        if "wsgi_reproxy.middleware" in line and f"{storage.group(1)}/" in line
    ]
    assert len(served) == 4, log
    assert "Traceback" not in log
