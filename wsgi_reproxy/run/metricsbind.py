"""``serve --metrics-bind ADDR``: ``/metrics`` from the gunicorn master.

Each worker counts in its own files under ``PROMETHEUS_MULTIPROC_DIR``
(``prometheus_client``'s multiprocess mode); the arbiter, which outlives
every worker, serves their sum on ADDR from one small thread
(:func:`start_exporter`, started in gunicorn's ``when_ready`` hook).  So a
scrape never lands on a worker busy streaming, and counts survive a worker's
restart::

    directory = prepare_directory()       # before prometheus_client loads
    ...
    install_hooks(application.cfg, parse_bind(addr), directory)

When ``PROMETHEUS_MULTIPROC_DIR`` is unset, ``serve`` creates a temporary
directory and removes it on exit; a directory you set must be empty when
the server starts (``prometheus_client``'s rule) and is left in place.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

#: Set (to the directory) when ``serve`` created PROMETHEUS_MULTIPROC_DIR, so
#: a gevent re-execution of the same command knows the directory is its own.
OWNED_ENV = "WSGI_REPROXY_OWNED_METRICS_DIR"


def parse_bind(addr: str) -> tuple[str, int]:
    """``"127.0.0.1:9100"``, ``"[::1]:9100"``, ``":9100"`` or ``"9100"`` ->
    ``(host, port)``; no host means 127.0.0.1 (metrics are not public).

    :raises ValueError: for a port that is not a number in 0-65535.
    """
    host, sep, port = addr.rpartition(":")
    if not sep:
        host, port = "", addr
    host = host.strip("[]") or "127.0.0.1"
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"--metrics-bind wants HOST:PORT, not {addr!r}")
    return host, int(port)


def take_metrics_bind(
    passed: list[str], given: str | None
) -> tuple[str | None, list[str]]:
    """Find ``--metrics-bind ADDR`` among the options after ``MODULE:APP``
    (argparse leaves them all to gunicorn), up to a ``--``.

    :returns: the address (the last one given wins, as in argparse) and the
        options without it.
    """
    rest: list[str] = []
    items = iter(passed)
    for item in items:
        if item == "--":
            rest += [item, *items]
            break
        if item == "--metrics-bind":
            given = next(items, given)
        elif item.startswith("--metrics-bind="):
            given = item.partition("=")[2]
        else:
            rest.append(item)
    return given, rest


def prepare_directory() -> str | None:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` is set; return the directory
    when ``serve`` created it (and must remove it), else ``None``."""
    owned = os.environ.get(OWNED_ENV)
    if owned and os.environ.get("PROMETHEUS_MULTIPROC_DIR") == owned:
        return owned
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    directory = tempfile.mkdtemp(prefix="wsgi-reproxy-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ[OWNED_ENV] = directory
    return directory


def _chain(cfg: Any, name: str, ours: Callable[..., None]) -> None:
    """Run *ours* before the hook *name* already configured (gunicorn.conf.py).

    gunicorn checks a hook's arity, so the wrapper takes exactly its arguments.
    """
    previous = cfg.settings[name].get()
    hook: Callable[..., None]
    if name == "child_exit":

        def hook(arbiter: Any, worker: Any) -> None:
            ours(arbiter, worker)
            previous(arbiter, worker)

    else:

        def hook(arbiter: Any) -> None:
            ours(arbiter)
            previous(arbiter)

    cfg.set(name, hook)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown gunicorn's log


def start_exporter(bind: tuple[str, int], registry: Any) -> WSGIServer:
    """Serve *registry* at ``/metrics`` on *bind* from a daemon thread.

    Our own small server (``prometheus_client.make_wsgi_app`` on wsgiref, a
    thread per scrape) rather than ``start_http_server``, whose return value
    changed across versions: we need the server to report its port and to
    shut it down.
    """
    from prometheus_client import make_wsgi_app

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET

    server = make_server(
        bind[0], bind[1], make_wsgi_app(registry), Server, handler_class=_Quiet
    )
    thread = threading.Thread(
        target=server.serve_forever, name="wsgi-reproxy-metrics", daemon=True
    )
    thread.start()
    return server


def install_hooks(cfg: Any, bind: tuple[str, int], owned: str | None) -> None:
    """Add the exporter to gunicorn's ``when_ready``, ``child_exit`` and
    ``on_exit`` hooks, keeping any the user configured.

    :param cfg: the gunicorn ``Config`` of the application.
    :param bind: where ``/metrics`` listens.
    :param owned: a directory to remove on exit.
    """
    from ..prometheus import mark_process_dead, multiprocess_registry

    servers: list[Any] = []

    def when_ready(arbiter: Any) -> None:
        server = start_exporter(bind, multiprocess_registry())
        servers.append(server)
        host, port = server.server_address[:2]
        if isinstance(host, bytes):  # never for AF_INET/AF_INET6; for mypy
            host = host.decode()
        shown = f"[{host}]" if ":" in host else host
        arbiter.log.info("Metrics at: http://%s:%d/metrics", shown, port)

    def child_exit(arbiter: Any, worker: Any) -> None:
        mark_process_dead(worker.pid)

    def on_exit(arbiter: Any) -> None:
        for server in servers:
            server.shutdown()
            server.server_close()
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)

    _chain(cfg, "when_ready", when_ready)
    _chain(cfg, "child_exit", child_exit)
    _chain(cfg, "on_exit", on_exit)
