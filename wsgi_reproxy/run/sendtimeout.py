"""A client that stops reading loses its download after a send timeout.

nginx's ``send_timeout`` (default 60 s) closes a connection whose client
took nothing for that long; Apache's ``Timeout`` (default 60 s) does the
same for mod_wsgi.  gunicorn has nothing of the kind: a client that stops
reading parks its worker thread (or greenlet) in ``sendall`` until TCP gives
up, minutes later, holding the storage connection all along.

:class:`SendTimeout` sets a timeout on the client socket gunicorn puts in
``environ["gunicorn.socket"]``, for each request, in every worker class
(sync, gthread, gevent: the socket the worker writes the response to).  A
send then fails with ``TimeoutError`` once the client has taken no bytes
(sync, gthread: Python's ``sendall`` deadline; gevent: the same) for that
long, gunicorn closes the response iterable -- the unfinished storage
response is closed, its pool slot freed -- and the client connection.
:class:`SendTimeoutLog` turns gunicorn's traceback for it into one line::

    app = SendTimeout(ReproxyMiddleware(app, config), 60)

Under gunicorn on Linux each body read is sized to what the client socket
takes at once, and the wait for room is a wait for the socket to become
writable, bounded by this same timeout (:mod:`wsgi_reproxy.responders.pace`):
the timeout is then a gap between two writes, as nginx's is: a client is
cut when its socket stays unwritable that long (Linux calls a TCP socket
writable again once a third of its send buffer is free).  Elsewhere Python's
``sendall`` bounds the whole call: a chunk (16 KiB while a client is slow,
:mod:`wsgi_reproxy.fetch.body`) must leave within the timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: nginx's ``send_timeout`` and Apache's ``Timeout`` default, seconds.
DEFAULT_SEND_TIMEOUT = 60.0

#: gunicorn's messages when a client socket error ends a request.
_GUNICORN_SOCKET_ERRORS = ("Socket error processing request.", "Error handling request")


class SendTimeout:
    """WSGI middleware: bound every send to the client by *seconds*.

    :param app: the application (the reproxy middleware).
    :param seconds: the send timeout; ``0`` or less leaves the socket alone.
    """

    def __init__(self, app: WSGIApplication, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None and self.seconds > 0:
            # gthread puts a kept-alive socket back to non-blocking between
            # requests (which clears this) and blocking again before the
            # next one; sync and gevent keep it.  Setting it per request
            # covers all three.
            sock.settimeout(self.seconds)
        return self.app(environ, start_response)


class SendTimeoutLog(logging.Filter):
    """Replace gunicorn's traceback for a send timeout by one INFO line.

    Added to the ``gunicorn.error`` logger in each worker; any other
    record passes unchanged.

    :param seconds: the send timeout, for the message.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, TimeoutError) or record.msg not in (
            _GUNICORN_SOCKET_ERRORS
        ):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg = "client took nothing for %g s (send timeout): connection closed"
        record.args = (self.seconds,)
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def install_log_filter(seconds: float) -> None:
    """Add :class:`SendTimeoutLog` to ``gunicorn.error`` (once)."""
    log = logging.getLogger("gunicorn.error")
    if not any(isinstance(f, SendTimeoutLog) for f in log.filters):
        log.addFilter(SendTimeoutLog(seconds))


def send_timeout(seconds: float) -> Callable[[WSGIApplication], WSGIApplication]:
    """What ``serve`` and ``demo`` wrap the middleware in, in each worker."""

    def wrap(app: WSGIApplication) -> WSGIApplication:
        install_log_filter(seconds)
        return SendTimeout(app, seconds)

    return wrap
