"""The examples work as written: ``examples/flask`` and ``examples/django``
through webtest against a loopback storage node, and the Django project under
gunicorn through ``wsgi-reproxy serve``."""

from __future__ import annotations

import hashlib
import importlib.util
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import urllib3
import webtest
from _processes import Command, gunicorn_quiet_options

from wsgi_reproxy.fetch.fetcher import default_pool
from wsgi_reproxy.run.storage import StorageNode, closed_port_url, generated_bytes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: What both examples' FILES point at on the storage nodes.
STORED = {
    "dev1/0/000/042.fid": generated_bytes(2 * 1024 * 1024 + 5, "report.pdf"),
    "dev1/0/000/043.fid": generated_bytes(150 * 1024, "holiday.jpg"),
}
REPORT = STORED["dev1/0/000/042.fid"]
HOLIDAY = STORED["dev1/0/000/043.fid"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def storage() -> Iterator[StorageNode]:
    with StorageNode(STORED) as node:
        yield node
    # The examples use the process-wide pool; drop its connections to this
    # node so none outlives the test.
    default_pool().clear()


def _load_flask_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "flask_example_app", EXAMPLES / "flask" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_django_example() -> ModuleType:
    # Django configures itself once per process, from this settings module.
    sys.path.insert(0, str(EXAMPLES / "django"))
    try:
        from downloads_site import wsgi  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES / "django"))
    return wsgi  # type: ignore[no-any-return]


#: Per example: how to load it, and how to point it at storage nodes.
NodesSetter = Callable[[list[str]], AbstractContextManager[Any]]


def _flask_nodes(module: ModuleType) -> NodesSetter:
    import contextlib

    @contextlib.contextmanager
    def use(nodes: list[str]) -> Iterator[None]:
        saved = module.app.config["STORAGE_NODES"]
        module.app.config["STORAGE_NODES"] = nodes
        try:
            yield
        finally:
            module.app.config["STORAGE_NODES"] = saved

    return use


def _django_nodes(module: ModuleType) -> NodesSetter:
    from django.test import override_settings

    return lambda nodes: override_settings(STORAGE_NODES=nodes)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param((_load_flask_example, _flask_nodes), id="flask"),
        pytest.param((_load_django_example, _django_nodes), id="django"),
    ],
)
def example(request: pytest.FixtureRequest) -> tuple[ModuleType, NodesSetter]:
    load, nodes = request.param
    module = load()
    return module, nodes(module)


@pytest.fixture
def client(
    example: tuple[ModuleType, NodesSetter], storage: StorageNode
) -> Iterator[webtest.TestApp]:
    module, use_nodes = example
    # A dead node first: every reproxy fails over to the live one.
    with use_nodes([closed_port_url(""), storage.base_url]):
        # The module's own ``application``: the app wrapped as in production.
        yield webtest.TestApp(module.application)


def test_reader_gets_the_stored_file_with_the_apps_headers(
    client: webtest.TestApp, storage: StorageNode
) -> None:
    response = client.get("/download/report.pdf", {"token": "alice-token"})
    assert response.status_int == 200
    assert sha256(response.body) == sha256(REPORT)
    assert response.headers["Content-Length"] == str(len(REPORT))
    # PreserveHeaders keeps the app's choices over the node's.
    assert response.headers["Content-Type"] == "application/pdf"
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
    )
    assert "X-Reproxy-Url" not in response.headers
    assert storage.requests == [("GET", "/dev1/0/000/042.fid", None)]


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        pytest.param("/download/report.pdf", None, 403, id="no-token"),
        pytest.param("/download/report.pdf", "mallory", 403, id="unknown-token"),
        pytest.param("/download/report.pdf", "bob-token", 404, id="not-a-reader"),
        pytest.param("/download/nothing.txt", "alice-token", 404, id="no-such-file"),
    ],
)
def test_denied_request_never_reaches_the_storage_node(
    client: webtest.TestApp,
    storage: StorageNode,
    path: str,
    token: str | None,
    status: int,
) -> None:
    params = {} if token is None else {"token": token}
    response = client.get(path, params, status=status)
    assert "X-Reproxy-Url" not in response.headers
    assert storage.requests == []


def test_range_request_gets_206_with_the_slice(client: webtest.TestApp) -> None:
    response = client.get(
        "/download/holiday.jpg",
        {"token": "bob-token"},
        headers={"Range": "bytes=100-4195"},
        status=206,
    )
    assert response.body == HOLIDAY[100:4196]
    assert response.headers["Content-Range"] == f"bytes 100-4195/{len(HOLIDAY)}"
    assert response.headers["Content-Type"] == "image/jpeg"


def test_head_gets_the_stored_files_headers_and_no_body(
    client: webtest.TestApp, storage: StorageNode
) -> None:
    response = client.head("/download/report.pdf", {"token": "alice-token"})
    assert response.status_int == 200
    assert response.body == b""
    assert response.headers["Content-Length"] == str(len(REPORT))
    assert storage.requests == [("HEAD", "/dev1/0/000/042.fid", None)]


#: examples/*/files/notes.txt, the same in both examples.
NOTES = (EXAMPLES / "flask" / "files" / "notes.txt").read_bytes()


def test_local_file_goes_out_through_the_frameworks_own_offload(
    client: webtest.TestApp,
) -> None:
    # Flask: send_from_directory with USE_X_SENDFILE (X-Sendfile); Django:
    # django-sendfile2 with SENDFILE_BACKEND = "wsgi_reproxy.django.sendfile".
    response = client.get("/local/notes.txt", {"token": "bob-token"})
    assert response.status_int == 200
    assert response.body == NOTES
    assert response.headers["Content-Length"] == str(len(NOTES))
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["Content-Disposition"] in (
        "attachment; filename=notes.txt",  # werkzeug quotes only when needed
        'attachment; filename="notes.txt"',  # django-sendfile2 always does
    )
    # No trigger or companion header leaks; the app's security headers
    # (X-Content-Type-Options...) are kept by ReproxyKeepAppHeaders.
    assert not [
        k
        for k in response.headers
        if k.lower().startswith(("x-sendfile", "x-accel-", "x-reproxy-"))
    ]
    ranged = client.get(
        "/local/notes.txt", {"token": "bob-token"}, headers={"Range": "bytes=0-6"}
    )
    assert ranged.status_int == 206 and ranged.body == NOTES[:7]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("..%2Freproxy.conf", id="dot-dot"),
        pytest.param("missing.txt", id="missing"),
    ],
)
def test_local_file_outside_files_is_404(client: webtest.TestApp, name: str) -> None:
    client.get(f"/local/{name}", {"token": "bob-token"}, status=404)


def test_django_system_check_reports_the_config(tmp_path: Path) -> None:
    _load_django_example()
    from django.core import checks
    from django.test import override_settings

    assert [m for m in checks.run_checks() if m.id.startswith("wsgi_reproxy")] == []
    conf = tmp_path / "reproxy.conf"
    conf.write_text("AllowReproxy On\nPreserveHeaders Content-Length\n")
    with override_settings(WSGI_REPROXY_CONFIG=conf):
        found = [m for m in checks.run_checks() if m.id.startswith("wsgi_reproxy")]
    assert [(m.id, m.msg) for m in found] == [
        (
            "wsgi_reproxy.W002",
            f"{conf}:2: PreserveHeaders Content-Length: this header is never"
            " preserved from the application's response",
        ),
        (
            "wsgi_reproxy.W002",
            f"{conf}:1: AllowReproxy On with no ReproxyAllowTargets: the"
            " application may make this server fetch any http(s) URL",
        ),
    ]
    conf.write_text("AllowReproxy maybe\n")
    with override_settings(WSGI_REPROXY_CONFIG=conf):
        found = [m for m in checks.run_checks() if m.id.startswith("wsgi_reproxy")]
    assert [(m.id, m.level, m.msg) for m in found] == [
        ("wsgi_reproxy.E001", checks.ERROR, f"{conf}:1: AllowReproxy must be On or Off")
    ]
    with override_settings(WSGI_REPROXY_CONFIG=None):
        found = [m for m in checks.run_checks() if m.id.startswith("wsgi_reproxy")]
    assert [m.id for m in found] == ["wsgi_reproxy.W001"]


@pytest.mark.slow
def test_django_project_under_gunicorn_serves_reproxied_file(
    tmp_path: Path, storage: StorageNode
) -> None:
    project = EXAMPLES / "django"
    command = Command(
        [
            "serve",
            str(project / "reproxy.conf"),
            "downloads_site.wsgi:django_application",
            "--bind",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--",
            "--chdir",
            str(project),
            *gunicorn_quiet_options(),
        ],
        tmp_path,
        env={"STORAGE_NODES": f"{closed_port_url('')} {storage.base_url}"},
    )
    http = urllib3.PoolManager(retries=False, timeout=30)
    with command as server:
        base = f"http://127.0.0.1:{server.port}/download"
        try:
            whole = http.request("GET", f"{base}/report.pdf?token=alice-token")
            ranged = http.request(
                "GET",
                f"{base}/report.pdf?token=alice-token",
                headers={"Range": "bytes=-10"},
            )
            denied = http.request("GET", f"{base}/report.pdf")
            # django-sendfile2 + our backend: X-Reproxy-File, then sendfile.
            local = http.request(
                "GET",
                f"http://127.0.0.1:{server.port}/local/notes.txt?token=bob-token",
            )
        finally:
            http.clear()
        assert server.stop(signal.SIGINT) == 0
    assert whole.status == 200
    assert sha256(whole.data) == sha256(REPORT)
    assert whole.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert ranged.status == 206
    assert ranged.data == REPORT[-10:]
    assert denied.status == 403
    assert local.status == 200 and local.data == NOTES
    assert local.headers["Content-Disposition"] == 'attachment; filename="notes.txt"'
    assert len(storage.requests) == 2
