"""Exceptions raised by :mod:`wsgi_reproxy`.

Every error the library raises derives from :class:`ReproxyError`.  Errors
carry the context needed to act on them: a :class:`ConfigError` knows the file
and line it came from, an :class:`UpstreamError` the URL that failed and why.
"""

from __future__ import annotations


class ReproxyError(Exception):
    """Base class of every error raised by wsgi_reproxy."""


class ConfigError(ReproxyError):
    """A configuration file could not be read or holds a bad value.

    ``str(err)`` reads ``file:line: message`` like Apache's own
    ``apachectl configtest``, so editors and CI logs can jump to the line.

    :param message: what is wrong, with the bad value shown via ``!r``.
    :param filename: the file the bad line is in (``None`` when unknown).
    :param lineno: the 1-based line number (``None`` when unknown).
    """

    def __init__(
        self, message: str, filename: str | None = None, lineno: int | None = None
    ) -> None:
        super().__init__(message, filename, lineno)
        self.message = message
        self.filename = filename
        self.lineno = lineno

    def __str__(self) -> str:
        if self.filename is None:
            return self.message
        if self.lineno is None:
            return f"{self.filename}: {self.message}"
        return f"{self.filename}:{self.lineno}: {self.message}"


class UpstreamError(ReproxyError):
    """One reproxy target could not serve the request.

    Raised by the fetching layer for a single URL; the middleware collects
    them while failing over and answers 502 (or 504 when the last one is a
    timeout) when every URL failed.

    :param url: the target URL that failed.
    :param reason: a short human-readable reason, e.g. ``"status 404"``.
    :param timeout: ``True`` when the failure was a timeout.
    :param status: the target's status code when it answered with one that
        is not an answer (SPEC §4.11: a 404 from every target is a 404).
    """

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        timeout: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason
        self.timeout = timeout
        self.status = status

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"


class TruncatedBodyError(UpstreamError):
    """The target broke off after the response had started.

    Raised from the body iterator so the WSGI server aborts the client
    connection: a truncated body must never look complete (SPEC §4.7).
    """
