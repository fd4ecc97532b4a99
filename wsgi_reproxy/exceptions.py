"""Exceptions raised by :mod:`wsgi_reproxy`.

Every error the library raises derives from :class:`ReproxyError`.  Errors
carry the context needed to act on them: a :class:`ConfigError` knows the file
and line it came from, an :class:`UpstreamError` the URL that failed and why.
"""

from __future__ import annotations

import re

# A run of non-blanks: a URL in a message is one (urllib3 quotes a request
# target as "url: /k?sig=1"; our reasons quote them with or without !r).
_TOKEN_RE = re.compile(r"\S+")
# Closing punctuation around a quoted URL, kept after the "?…".
_CLOSERS = "'\")],;."


def redact_query(url: str) -> str:
    """*url* with its query replaced by ``?…`` (presigned URLs carry
    credentials in it; SPEC §5): ``http://s3/k?X-Amz-Signature=ab`` ->
    ``http://s3/k?…``.  Everything after the first ``?`` goes."""
    head, mark, _ = url.partition("?")
    return head + "?\u2026" if mark else url


def redact_urls(text: str) -> str:
    """*text* with the query of every URL in it replaced by ``?…``.

    For messages that quote URLs (a redirect's ``Location``, urllib3's
    ``url: /k?sig=…``): ``redirect to 'http://h/k?t=1' refused`` ->
    ``redirect to 'http://h/k?…' refused``.
    """
    return _TOKEN_RE.sub(_redact_token, text) if "?" in text else text


def _redact_token(match: re.Match[str]) -> str:
    # Linear on purpose: a backtracking regex took seconds on a long path.
    token = match.group()
    slash = token.find("/")
    query = token.find("?", slash) if slash >= 0 else -1
    if query < 0:
        return token
    end = len(token)
    while end > query + 1 and token[end - 1] in _CLOSERS:
        end -= 1
    return token[:query] + "?\u2026" + token[end:]


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
        #: the target's status when it answered with a refusal (e.g. 404)
        self.status = status

    def __str__(self) -> str:
        # Safe to log as is: target URLs lose their query (ReproxyLogQuery).
        return self.describe(show_query=False)

    def describe(self, *, show_query: bool) -> str:
        """``url: reason``; with ``show_query=False`` (what ``str()`` gives)
        every URL in it has its query redacted to ``?…``."""
        if show_query:
            return f"{self.url}: {self.reason}"
        return f"{redact_query(self.url)}: {redact_urls(self.reason)}"


class BusyError(UpstreamError):
    """No connection to the target was free within the connect timeout.

    The per-host bound of the pool (``serve --max-storage-connections``) was
    reached: the storage node is protected and the client is told to come
    back (``503 Service Unavailable``), not that the node is broken.
    """


class TruncatedBodyError(UpstreamError):
    """The target broke off after the response had started.

    Raised from the body iterator so the WSGI server aborts the client
    connection: a truncated body must never look complete (SPEC §4.7).
    """
