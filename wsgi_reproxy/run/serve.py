"""``serve`` and ``demo``: run a WSGI app wrapped in the middleware under gunicorn.

::

    wsgi-reproxy serve sample_conf/minimal.conf myproject.wsgi:application \\
        --bind 127.0.0.1:8000 --workers 2

runs gevent workers of 10,000 connections each, a 60 s send timeout and
no gunicorn control socket unless told otherwise (:mod:`.defaults`,
:mod:`.sendtimeout`).

The config is parsed once, in the gunicorn arbiter, before any socket is
bound: a bad config exits with ``file:line: message`` and status 1.  The
application is imported by each worker (gunicorn's own default; pass
``--preload`` to import it once in the arbiter), then wrapped in
:class:`~wsgi_reproxy.ReproxyMiddleware`.  Everything after ``MODULE:APP``
(an optional ``--`` is dropped) is handed to gunicorn's own option parser,
and ``gunicorn.conf.py`` / ``-c FILE`` / ``GUNICORN_CMD_ARGS`` work as they do
for the ``gunicorn`` command.  gunicorn is the ``serve`` extra: without it,
``serve`` says how to install it and exits 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from ..fetch.pool import DEFAULT_MAXSIZE, MAX_CONNECTIONS_ENV
from .defaults import prepare_process, serve_defaults
from .gunicorn import gunicorn_available, run_gunicorn
from .sendtimeout import DEFAULT_SEND_TIMEOUT, send_timeout
from .summary import summary_line

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ..fetch.metrics import Metrics
    from ..resolve.resolver import Config

_INSTALL_HINT = (
    "{command}: gunicorn is not installed; install it with\n"
    "    python -m pip install 'wsgi_reproxy[{extra}]'"
)


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``serve`` and ``demo`` on the command line."""
    serve = commands.add_parser(
        "serve",
        help="run MODULE:APP wrapped in the middleware under gunicorn",
        description=(
            "Run a WSGI application wrapped in ReproxyMiddleware(app, CONF) under "
            "gunicorn. Options after MODULE:APP (an optional '--' first) go to "
            "gunicorn unchanged, e.g. '-- --worker-class gevent --timeout 60'."
        ),
    )
    serve.add_argument("conf", metavar="CONF", help="the reproxy config file")
    serve.add_argument(
        "app",
        metavar="MODULE:APP",
        help="the WSGI application, as for gunicorn (module:callable or "
        "module:factory())",
    )
    serve.add_argument(
        "--bind",
        "-b",
        metavar="ADDRESS",
        help="HOST:PORT or unix:PATH to listen on (gunicorn's default: 127.0.0.1:8000)",
    )
    serve.add_argument("--workers", "-w", type=int, metavar="N", help="processes")
    serve.add_argument(
        "--threads", type=int, metavar="N", help="threads per worker (gthread)"
    )
    serve.add_argument(
        "--max-storage-connections",
        type=int,
        metavar="N",
        help="connections per storage node and worker, busy and idle (default "
        f"{DEFAULT_MAXSIZE}); past it a request waits the connect timeout, then 503",
    )
    serve.add_argument(
        "--metrics-bind",
        metavar="ADDR",
        help="serve Prometheus /metrics on HOST:PORT from the gunicorn master "
        "(needs the prometheus extra)",
    )
    serve.add_argument(
        "--send-timeout",
        type=float,
        default=DEFAULT_SEND_TIMEOUT,
        metavar="SECONDS",
        help="close a client that takes no bytes for this long, and its storage "
        "connection (nginx's send_timeout; default %(default)g, 0: never)",
    )
    serve.add_argument(
        "gunicorn_args",
        nargs=argparse.REMAINDER,
        metavar="-- GUNICORN_OPTION",
        help="further gunicorn options",
    )
    serve.set_defaults(func=_serve_command)

    demo = commands.add_parser(
        "demo",
        help="a self-contained demo: storage node + Flask app + middleware",
        description=(
            "Start, on 127.0.0.1, a storage node and a small Flask app that "
            "answers with X-Reproxy-Url (a dead node first, then the live one), "
            "wrapped in the middleware under gunicorn; print curl commands to "
            "try. Needs the demo extra: pip install 'wsgi_reproxy[demo]'. "
            "Ctrl-C stops everything."
        ),
    )
    demo.add_argument(
        "--port",
        "-p",
        type=int,
        default=8000,
        help="port for the app on 127.0.0.1 (default 8000; 0 picks a free one)",
    )
    demo.set_defaults(func=_demo_command)


def _gunicorn_options(args: argparse.Namespace) -> list[str]:
    """Our flags as gunicorn options, followed by the pass-through ones."""
    options: list[str] = []
    if args.bind is not None:
        options += ["--bind", args.bind]
    if args.workers is not None:
        options += ["--workers", str(args.workers)]
    if args.threads is not None:
        options += ["--threads", str(args.threads)]
    extra = list(args.gunicorn_args)
    # argparse keeps a '--' that follows options given after MODULE:APP; for
    # gunicorn's parser it would turn every later option into a positional.
    if "--" in extra:
        extra.remove("--")
    # Later options win in argparse, so pass-through options override ours.
    return options + extra


def _serve_command(args: argparse.Namespace) -> int:
    if not gunicorn_available():
        print(_INSTALL_HINT.format(command="serve", extra="serve"), file=sys.stderr)
        return 2
    config = load_or_report(args.conf, "serve")
    if config is None:
        return 1
    if args.max_storage_connections is not None:
        if args.max_storage_connections < 1:
            print(
                "serve: --max-storage-connections must be at least 1", file=sys.stderr
            )
            return 2
        # Read by each worker when it builds its pool (after the fork).
        os.environ[MAX_CONNECTIONS_ENV] = str(args.max_storage_connections)
    app_uri: str = args.app

    def load_app() -> WSGIApplication:
        from gunicorn import util  # type: ignore[import-untyped]

        app: WSGIApplication = util.import_app(app_uri)
        return app

    from .metricsbind import take_metrics_bind

    args.metrics_bind, args.gunicorn_args = take_metrics_bind(
        list(args.gunicorn_args), args.metrics_bind
    )
    options = _gunicorn_options(args)
    # What a gevent re-exec runs again (our own options included).
    own = ["serve", "--send-timeout", str(args.send_timeout)]
    own += [args.conf, app_uri, "--", *options]
    metrics = None
    bind: tuple[str, int] = ("127.0.0.1", 0)
    owned: str | None = None
    if args.metrics_bind is not None:
        from .metricsbind import parse_bind, prepare_directory

        try:
            bind = parse_bind(args.metrics_bind)
        except ValueError as exc:
            print(f"serve: {exc}", file=sys.stderr)
            return 2
        if not prometheus_available():
            print(
                _INSTALL_HINT.format(command="serve", extra="prometheus"),
                file=sys.stderr,
            )
            return 2
        # Before prometheus_client is imported: it reads the variable then.
        owned = prepare_directory()
        own[1:1] = ["--metrics-bind", args.metrics_bind]
        metrics = _prometheus_metrics

    def before_run(application: Any) -> None:
        if args.metrics_bind is not None:
            from .metricsbind import install_hooks

            install_hooks(application.cfg, bind, owned)
        print(summary_line(config, args.conf, application.cfg), flush=True)

    master = os.getpid()
    try:
        run_gunicorn(
            options,
            load_app,
            config,
            proc_name=app_uri,
            argv=own,
            metrics=metrics,
            before_run=before_run,
            defaults=serve_defaults,
            configure=prepare_process,
            wrap=send_timeout(args.send_timeout),
        )
    finally:
        # gunicorn's on_exit hook removes it too; this covers a failed start.
        # Workers leave through here as well (SystemExit): never theirs.
        if owned is not None and os.getpid() == master:
            shutil.rmtree(owned, ignore_errors=True)
    return 0


def prometheus_available() -> bool:
    """``True`` when prometheus_client can be imported."""
    return importlib.util.find_spec("prometheus_client") is not None


def _prometheus_metrics() -> Metrics:
    from ..prometheus import PrometheusMetrics

    return PrometheusMetrics()


def _demo_command(args: argparse.Namespace) -> int:
    from . import demo

    return demo.main(args.port)


def load_or_report(path: str, command: str) -> Config | None:
    """Load the config at *path*; on error print ``file:line: message``.

    :returns: the config, or ``None`` after printing the error to stderr.
    """
    from ..resolve.resolver import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        # load_config reports unreadable files as ConfigError too.
        print(f"{exc}", file=sys.stderr)
    print(f"{command}: not started because of the config error above", file=sys.stderr)
    return None
