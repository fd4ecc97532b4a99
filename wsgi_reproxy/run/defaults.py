"""``serve``'s gunicorn defaults: slow clients never block or get cut.

A reproxied download lasts as long as the client takes to read it, and
phones on bad networks read at tens of kB/s.  gunicorn's own defaults (one
``sync`` worker, ``--timeout 30``) let one such client block the worker and
kill every download that lasts longer than 30 s.  ``serve`` and ``demo``
therefore choose, where neither the command line, ``$GUNICORN_CMD_ARGS``
nor a gunicorn config file says otherwise (:func:`serve_defaults`):

* the ``gevent`` worker, :data:`WORKER_CONNECTIONS` clients per worker: a
  slow download is a parked greenlet, and the worker's heartbeat runs
  between sends, so ``--timeout`` never cuts a download;
* ``gthread`` when ``--threads`` is given without a worker class (as
  gunicorn turns ``sync`` into ``gthread``), and when gevent is missing,
  with a warning: each thread holds one download, the heartbeat thread
  keeps downloads alive past ``--timeout``;
* no gunicorn control socket (gunicorn 24+ would put one in
  ``$XDG_RUNTIME_DIR`` or ``~/.gunicorn``, shared by every instance),
  unless ``--control-socket PATH`` is given.

:func:`prepare_process` then raises ``RLIMIT_NOFILE`` to what the worker
connections need and warns once about ``sync`` workers::

    run_gunicorn(options, load_app, config, defaults=serve_defaults,
                 configure=prepare_process)
"""

from __future__ import annotations

import resource
import signal
import sys
from typing import Any

#: Clients one gevent worker holds: 10,000 downloads per box with one
#: worker (gunicorn's default count), more with ``--workers``.  A slow
#: download costs about 25 kB in the worker (benchmarks/README.rst).
WORKER_CONNECTIONS = 10_000

#: Concurrent downloads ``serve`` promises per box (issue 12).
BOX_DOWNLOADS = 10_000

#: File descriptors per connection: the client's socket and the storage
#: node's (the pool keeps at most one idle connection per in-flight one).
FDS_PER_CONNECTION = 2

#: Descriptors a worker needs besides its connections: listeners, logs,
#: the heartbeat file, imports.
FDS_SPARE = 256

#: Threads per worker when falling back to gthread without ``--threads``.
FALLBACK_THREADS = 32

SYNC_WARNING = (
    "serve: warning: sync workers: one slow client blocks a whole worker "
    "(every other request waits for it), and a download that lasts longer "
    "than --timeout ({timeout} s) is killed mid-body by gunicorn's worker "
    "timeout. Drop -k sync to get serve's gevent default."
)

NO_GEVENT_WARNING = (
    "serve: warning: gevent is not installed, running gthread workers with "
    "{threads} threads: each holds one download, so {threads} slow clients "
    "per worker take it down. Install it with\n"
    "    python -m pip install 'wsgi_reproxy[serve]'"
)

NOFILE_WARNING = (
    "serve: warning: open files are limited to {limit} (hard limit), enough "
    "for about {downloads} concurrent downloads per worker, not "
    "--worker-connections {connections}; raise the hard limit (ulimit -Hn, "
    "systemd LimitNOFILE=)."
)


def gevent_worker_available() -> bool:
    """``True`` when gunicorn's gevent worker can be loaded.

    Importing it checks gevent's version with ``packaging``, which only
    ``gunicorn[gevent]`` (or ``wsgi_reproxy[serve]``) installs.  It imports
    gevent without monkey-patching anything.
    """
    try:
        import gunicorn.workers.ggevent  # type: ignore[import-untyped]  # noqa: F401
    except (ImportError, RuntimeError):
        return False
    return True


def serve_defaults(cfg: Any) -> dict[str, object]:
    """The settings ``serve`` and ``demo`` use where nothing else set them.

    :param cfg: gunicorn's ``Config`` after the command line, environment
        and config file were applied; only keys they did not set are used.
    """
    chosen: dict[str, object] = {
        "worker_connections": WORKER_CONNECTIONS,
        "control_socket_disable": True,
        "post_worker_init": leave_ctrl_c_to_the_arbiter,
    }
    if cfg.settings["control_socket"].value != cfg.settings["control_socket"].default:
        # --control-socket PATH (or a config file's) asks for one.
        chosen["control_socket_disable"] = False
    if cfg.threads > 1:
        chosen["worker_class"] = "gthread"
    elif gevent_worker_available():
        chosen["worker_class"] = "gevent"
    else:
        chosen["worker_class"] = "gthread"
        chosen["threads"] = FALLBACK_THREADS
        print(NO_GEVENT_WARNING.format(threads=FALLBACK_THREADS), file=sys.stderr)
    return chosen


def leave_ctrl_c_to_the_arbiter(worker: object) -> None:
    """gunicorn's ``post_worker_init`` hook: workers ignore SIGINT.

    Ctrl-C signals the whole process group, and the arbiter then sends each
    worker SIGQUIT as well.  A gevent worker runs the second handler while
    it is already exiting (gevent's ``threading._shutdown`` yields to
    pending greenlets) and prints a ``SystemExit`` traceback.  Ignoring
    SIGINT leaves the stop to the arbiter's SIGQUIT, one signal per worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def prepare_process(cfg: Any) -> None:
    """Raise ``RLIMIT_NOFILE`` for the worker connections; warn about sync.

    Runs in the arbiter, whose limits the workers inherit.
    """
    worker = str(cfg.worker_class_str).lower()
    if worker in ("sync", "gunicorn.workers.sync.syncworker"):
        print(SYNC_WARNING.format(timeout=cfg.timeout), file=sys.stderr)
        return
    connections = int(cfg.worker_connections)
    limit = raise_nofile(connections * FDS_PER_CONNECTION + FDS_SPARE)
    downloads = (limit - FDS_SPARE) // FDS_PER_CONNECTION
    # Quiet while the box still holds BOX_DOWNLOADS (2 workers under a
    # 20,000 hard limit do); the shortfall matters to a single worker.
    short = downloads < connections and downloads * cfg.workers < BOX_DOWNLOADS
    if "gevent" in worker and short:
        print(
            NOFILE_WARNING.format(
                limit=limit, downloads=max(downloads, 0), connections=connections
            ),
            file=sys.stderr,
        )


def raise_nofile(needed: int) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` towards *needed*, up to the hard limit.

    Never lowers it.

    :returns: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed if soft == resource.RLIM_INFINITY else soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
