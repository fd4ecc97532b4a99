"""Embedding gunicorn: run a WSGI app wrapped in the middleware in-process.

:func:`run_gunicorn` is what ``wsgi-reproxy serve`` and ``demo`` call; it
builds gunicorn's own ``Application`` (so ``gunicorn.conf.py``, ``-c``,
``$GUNICORN_CMD_ARGS`` and every gunicorn option keep working) around an
already loaded reproxy config::

    run_gunicorn(["--bind", "127.0.0.1:8000"], lambda: app, load_config(path))

gunicorn is an optional dependency (the ``serve`` and ``demo`` extras); this
module imports it only inside its functions.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ..fetch.metrics import Metrics
    from ..resolve.resolver import Config

#: gunicorn settings, or a callable computing them from the parsed ``cfg``.
Defaults = Mapping[str, object] | Callable[[Any], Mapping[str, object]]


def gunicorn_available() -> bool:
    """``True`` when gunicorn can be imported."""
    try:
        import gunicorn.app.base  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def run_gunicorn(
    options: Sequence[str],
    load_app: Callable[[], WSGIApplication],
    config: Config,
    *,
    proc_name: str = "wsgi-reproxy",
    settings: Mapping[str, object] | None = None,
    argv: Sequence[str] | None = None,
    metrics: Callable[[], Metrics] | None = None,
    before_run: Callable[[Any], None] | None = None,
    defaults: Defaults | None = None,
    configure: Callable[[Any], None] | None = None,
    wrap: Callable[[WSGIApplication], WSGIApplication] | None = None,
) -> None:
    """Run gunicorn in this process until it stops (it exits via ``SystemExit``).

    The parameters are :func:`make_application`'s, and *before_run*, called
    with the configured application just before it runs.
    """
    application = make_application(
        options, load_app, config, proc_name=proc_name, settings=settings,
        argv=argv, metrics=metrics, defaults=defaults, configure=configure,
        wrap=wrap,
    )  # fmt: skip
    if before_run is not None:
        before_run(application)
    application.run()


def make_application(
    options: Sequence[str],
    load_app: Callable[[], WSGIApplication],
    config: Config,
    *,
    proc_name: str = "wsgi-reproxy",
    settings: Mapping[str, object] | None = None,
    argv: Sequence[str] | None = None,
    metrics: Callable[[], Metrics] | None = None,
    defaults: Defaults | None = None,
    configure: Callable[[Any], None] | None = None,
    wrap: Callable[[WSGIApplication], WSGIApplication] | None = None,
) -> Any:
    """A configured gunicorn ``Application``; its ``run()`` starts the server.

    :param options: gunicorn command-line options, parsed by gunicorn itself.
    :param load_app: returns the application; called in each worker (or in
        the arbiter with ``--preload``).  Its result is wrapped in
        ``ReproxyMiddleware(app, config)``.
    :param config: the already loaded reproxy config.
    :param proc_name: gunicorn's default process name.
    :param settings: gunicorn settings applied last (server hooks, for the
        demo), overriding options and config files; names this gunicorn
        version does not know are skipped.
    :param argv: the ``wsgi-reproxy`` arguments that start this server again;
        with a gevent worker class, the process re-executes itself with them
        after monkey-patching first (see :func:`_gevent_reexec`).
    :param metrics: builds the middleware's ``metrics=`` where the app is
        loaded (each worker, or the arbiter with ``--preload``).
    :param defaults: gunicorn settings for what neither a config file,
        ``$GUNICORN_CMD_ARGS`` nor *options* set; a callable gets the parsed
        ``cfg`` and returns them (``serve``'s gevent default, see
        :mod:`.defaults`).
    :param configure: called with the final ``cfg`` in the process that
        runs the arbiter (after any gevent re-exec), before it binds.
    :param wrap: applied around the middleware in :meth:`load`.
    """
    from gunicorn.app.base import Application

    from ..middleware import ReproxyMiddleware

    start_dir = os.getcwd()

    class _ReproxyApplication(Application):  # type: ignore[misc]
        """gunicorn's ``Application``, configured from *options* rather than
        ``sys.argv``, loading *load_app*'s app wrapped in the middleware."""

        def init(self, parser: object, opts: object, args: object) -> dict[str, object]:
            return {"default_proc_name": proc_name}

        def load_config(self) -> None:
            # The same precedence as gunicorn's Application.load_config:
            # config file, then $GUNICORN_CMD_ARGS, then the command line.
            parser = self.cfg.parser()
            cmdline = parser.parse_args(list(options))
            env_args = parser.parse_args(self.cfg.get_cmd_args_from_env())
            for key, value in self.init(parser, cmdline, cmdline.args).items():
                self.cfg.set(key, value)
            before = {key: s.value for key, s in self.cfg.settings.items()}
            self.chdir()
            config_file = cmdline.config or env_args.config
            if config_file is None:
                from gunicorn.config import (  # type: ignore[import-untyped]
                    get_default_config_file,
                )

                config_file = get_default_config_file()
            if config_file is not None:
                self.load_config_from_file(config_file)
            explicit = {
                key for key, s in self.cfg.settings.items() if s.value != before[key]
            }
            for parsed in (env_args, cmdline):
                for key, value in vars(parsed).items():
                    if value is not None and key != "args":
                        self.cfg.set(key.lower(), value)
                        explicit.add(key.lower())
            chosen = defaults(self.cfg) if callable(defaults) else defaults
            for key, value in (chosen or {}).items():
                if key in self.cfg.settings and key not in explicit:
                    self.cfg.set(key, value)
            for key, value in (settings or {}).items():
                # Skip settings this gunicorn version does not have (e.g.
                # control_socket_disable, new in gunicorn 27).
                if key in self.cfg.settings:
                    self.cfg.set(key, value)
            # The config file may have changed the directory (gunicorn does
            # the same); it also puts that directory on sys.path.
            self.chdir()
            if argv is not None:
                _gevent_reexec(str(self.cfg.worker_class_str), argv, start_dir)
            if configure is not None:
                configure(self.cfg)

        def load(self) -> WSGIApplication:
            app = load_app()
            # After the app: its own logging setup, if any, comes first.
            share_gunicorn_log()
            wrapped: WSGIApplication = ReproxyMiddleware(
                app, config, metrics=None if metrics is None else metrics()
            )
            return wrap(wrapped) if wrap is not None else wrapped

    return _ReproxyApplication()


#: What a re-executed gevent server runs: patch before anything imports ssl.
_GEVENT_BOOT = (
    "from gevent import monkey; monkey.patch_all(); import sys; "
    "from wsgi_reproxy.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


def _gevent_reexec(worker_class: str, argv: Sequence[str], cwd: str) -> None:
    """Restart this process with gevent's monkey-patching done first.

    gunicorn's gevent worker patches after the fork, but this process has
    already imported urllib3 (and through it ``ssl``), so urllib3 would keep
    unpatched, blocking TLS objects -- gevent warns "Monkey-patching ssl after
    ssl has already been imported may lead to incorrect behaviour".  Plain
    ``gunicorn -k gevent`` avoids this by importing the app only in the
    worker; we load the config up front, so we start again, patched, with
    the same arguments.  Nothing happens once patched or when gevent is
    missing (gunicorn then reports the worker class error itself).

    :param cwd: the directory the command started in; gunicorn's ``--chdir``
        has moved us since, and *argv* may hold paths relative to it.
    """
    if "gevent" not in worker_class.lower():
        return
    try:
        from gevent import monkey  # type: ignore[import-untyped]
    except ImportError:
        return
    if monkey.is_module_patched("socket"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(cwd)
    os.execv(sys.executable, [sys.executable, "-c", _GEVENT_BOOT, *argv])


def share_gunicorn_log() -> None:
    """Send ``wsgi_reproxy``'s log lines to gunicorn's error log.

    The library only logs (one INFO line per reproxy, WARNING per failed
    target) and never configures logging; without configuration only its
    WARNINGs would be seen (through ``wsgi.errors``; see
    :mod:`wsgi_reproxy.logs`), the INFO lines never.  When nothing configured
    logging (the root logger has no handler: no
    ``--log-config``, no ``logging.basicConfig`` or Django ``LOGGING`` in the
    app), ``serve`` attaches gunicorn's error-log handlers and level
    (``--log-level``, ``--error-logfile``) to the ``wsgi_reproxy`` logger, as
    gunicorn does for its own messages.  Otherwise it leaves logging alone.
    """
    if logging.getLogger().handlers:
        return
    ours = logging.getLogger("wsgi_reproxy")
    errors = logging.getLogger("gunicorn.error")
    if not errors.handlers:
        return
    for handler in errors.handlers:
        if handler not in ours.handlers:
            ours.addHandler(handler)
    ours.setLevel(errors.level)
