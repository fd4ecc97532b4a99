"""The one boundary where urllib3's exceptions become ours.

Every urllib3 (or socket) exception is translated into
:class:`~wsgi_reproxy.UpstreamError` here (httpx's
``map_httpcore_exceptions``); the middleware turns that into 502/504::

    with upstream_errors(url):
        response = pool.urlopen(...)
"""

from __future__ import annotations

from types import TracebackType

from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from ..exceptions import BusyError, UpstreamError
from .wire import FramingError


class upstream_errors:  # lower case: it replaced a function of that name
    """Translate urllib3 and socket exceptions into *error* for *url*.

    The one place where urllib3's exception hierarchy meets ours; the
    original exception stays available as ``__cause__``.  A class, not a
    ``contextlib.contextmanager``: it is entered two or three times per
    reproxy, and a generator per entry showed in issue 16's profile.
    """

    __slots__ = ("url", "error")

    def __init__(self, url: str, *, error: type[UpstreamError] = UpstreamError):
        self.url = url
        self.error = error

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        url, error = self.url, self.error
        if isinstance(exc, MaxRetryError):  # only with a caller's pool that retries
            reason = exc.reason if exc.reason is not None else exc
            raise _translate(url, reason, error) from exc
        if isinstance(exc, FramingError):
            # RFC 9112: a response whose framing is in doubt is never passed
            # on; once the body has started, the framing breaking is a
            # broken body.
            what = "body broke off" if error is not UpstreamError else "bad framing"
            raise error(url, f"{what}: {exc}") from exc
        if isinstance(exc, (HTTPError, OSError)):
            raise _translate(url, exc, error) from exc


def _translate(
    url: str, exc: BaseException, error: type[UpstreamError]
) -> UpstreamError:
    if isinstance(exc, ReadTimeoutError):
        return error(url, "read timeout", timeout=True)
    if isinstance(exc, EmptyPoolError):
        return BusyError(
            url, "no free connection in the pool (the per-host bound)", timeout=True
        )
    if isinstance(exc, NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        text = cause.strerror if isinstance(cause, OSError) and cause.strerror else exc
        return error(url, f"cannot connect: {text}")
    if isinstance(exc, ConnectTimeoutError):
        # Checked after NewConnectionError, which urllib3 2 derives from it:
        # a refused connection is not a timeout (and must not answer 504).
        return error(url, "connect timeout", timeout=True)
    if isinstance(exc, ProtocolError):
        return error(url, f"connection broken: {exc.args[0] if exc.args else exc}")
    if isinstance(exc, TimeoutError):
        text = str(exc)
        return error(
            url, "read timeout" if text in ("", "timed out") else text, timeout=True
        )
    return error(url, f"{type(exc).__name__}: {exc}")
