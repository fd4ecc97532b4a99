"""No silent failures: WARNING and above reach ``wsgi.errors`` until the app
configures logging (SPEC §5 "Logging").

The package logs through ``logging.getLogger("wsgi_reproxy")`` and never
configures logging.  Python's own last resort (``logging.lastResort``) does
not help a library: a package logger with any handler, even a
``NullHandler``, switches it off, and an app that never set logging up
loses every failover and 502 line.  So instead of a ``NullHandler`` the
package logger carries one :class:`ErrorsFallbackHandler`, which writes a
record only while *logging is not configured* for it, to the current
request's ``environ["wsgi.errors"]`` (PEP 3333's place for errors; gunicorn,
mod_wsgi and uWSGI route it to their error log), outside a request to
``sys.stderr``::

    set_request_errors(environ["wsgi.errors"])   # the middleware, per request
    logger.warning("reproxy of %s failed", path) # -> that stream, or nowhere

"Configured" means: a handler other than this fallback is found on the
record's logger or on an ancestor it propagates to (the root logger
included), which is where ``logging`` itself would deliver the record.
``logging.basicConfig()``, Django's ``LOGGING``, gunicorn's
``--log-config``, or a handler the app adds to ``wsgi_reproxy`` (a
``NullHandler`` too: the way to silence a library on purpose) all count;
the fallback then stays quiet, so nothing is written twice.

Cost: the middleware sets one context variable per request; the check runs
only for records at WARNING and above that were emitted anyway.  Context
variables are per thread and per greenlet (gevent), so concurrent requests
never see each other's stream.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Mapping
from typing import IO, Any

#: The package logger's name; every module logs below it.
PACKAGE_LOGGER = "wsgi_reproxy"

#: gunicorn's own error-log layout, so fallback lines read like its own.
FALLBACK_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
FALLBACK_DATEFMT = "%Y-%m-%d %H:%M:%S %z"

#: The current request's ``wsgi.errors``; set by the middleware.  Not reset
#: when the middleware returns: the body's ``close()`` logs later, in the same
#: thread or greenlet, and the next request there sets it again.
_request_errors: contextvars.ContextVar[IO[str] | None] = contextvars.ContextVar(
    "wsgi_reproxy_request_errors", default=None
)

#: Where a server's own request id is found, after ``X-Request-ID``:
#: mod_wsgi's, then Apache mod_unique_id's.
_SERVER_ID_KEYS = ("HTTP_X_REQUEST_ID", "mod_wsgi.request_id", "UNIQUE_ID")

#: Longest request id carried into a log record (a client may send any).
MAX_REQUEST_ID = 200


def set_request_errors(stream: IO[str] | None) -> None:
    """Make *stream* (``environ["wsgi.errors"]``) the fallback's destination
    for the rest of this request, in this thread or greenlet."""
    _request_errors.set(stream)


def request_id(environ: Mapping[str, Any]) -> str | None:
    """The request's id: ``X-Request-ID`` (set by a front proxy, e.g. nginx
    ``$request_id``), else the server's own (mod_wsgi, mod_unique_id), else
    ``None``.  Cut to :data:`MAX_REQUEST_ID` characters."""
    for key in _SERVER_ID_KEYS:
        value = environ.get(key)
        if value:
            return str(value)[:MAX_REQUEST_ID]
    return None


def logging_configured(logger: logging.Logger) -> bool:
    """Whether a record of *logger* reaches a handler other than the fallback.

    The same walk as ``Logger.callHandlers``: *logger*, then its parents while
    ``propagate`` is true, down to the root logger.
    """
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, ErrorsFallbackHandler):
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


class ErrorsFallbackHandler(logging.Handler):
    """Writes WARNING and above to the request's ``wsgi.errors`` while no
    other handler would receive the record (see the module documentation).

    :param level: the lowest level written (WARNING: failures, not the INFO
        line every reproxy logs).
    """

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter(FALLBACK_FORMAT, FALLBACK_DATEFMT))

    def emit(self, record: logging.LogRecord) -> None:
        if logging_configured(logging.getLogger(record.name)):
            return
        stream = _request_errors.get()
        if stream is None:
            stream = sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # a stream closed under us: logging's own rule
            self.handleError(record)


def install_fallback(name: str = PACKAGE_LOGGER) -> ErrorsFallbackHandler:
    """Put one :class:`ErrorsFallbackHandler` on the logger *name* (idempotent).

    Called when the package is imported, in place of the ``NullHandler`` a
    library would otherwise add.
    """
    logger = logging.getLogger(name)
    for handler in logger.handlers:
        if isinstance(handler, ErrorsFallbackHandler):
            return handler
    handler = ErrorsFallbackHandler()
    logger.addHandler(handler)
    return handler
