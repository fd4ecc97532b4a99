"""Which reproxy target URLs may be fetched: input limits and the allow-list.

An ``X-Reproxy-Url`` is an outbound request chosen by the application (and by
anyone who can influence the URL it builds).  Every URL, and every redirect
hop, goes through :func:`check_url` before a byte is sent::

    reason = check_url(url, settings)
    if reason is not None:
        log.warning("reproxy: skipping %s: %s", url, reason)

The URL is parsed once by :mod:`wsgi_reproxy.config.urls` (a strict parser that
agrees with urllib3's where it accepts a URL and refuses it where the two
could disagree).  Matching compares the parsed, normalised URL with the
parsed pattern, never raw strings.

The pattern syntax and its compiled form live with the parser, in
:mod:`wsgi_reproxy.config.allowlist`; here each request's URL is checked
against the compiled patterns.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from ..config.allowlist import TargetPattern, compile_target
from ..config.settings import Settings
from ..config.urls import ParsedUrl, bad_char, parse_url


class SplitUrls(list[str]):
    """The URLs :func:`split_urls` kept; ``dropped`` counts the ones past the
    limit so the caller can log them.  Otherwise an ordinary list."""

    dropped: int = 0


def split_urls(values: Sequence[str], limit: int = 16) -> SplitUrls:
    """Split ``X-Reproxy-Url`` header values into URLs, in order.

    Every header value is split on any whitespace (perlbal splits on
    ``\\s+``); several headers are read in the order given.  At most *limit*
    URLs are kept (issue 4: a bounded fan-out per response); the rest are
    counted in :attr:`SplitUrls.dropped`.

    :param values: the values of every ``X-Reproxy-Url`` header, in order.
    :param limit: the most URLs to return.
    """
    urls = SplitUrls()
    for value in values:
        for url in value.split():
            if len(urls) < limit:
                urls.append(url)
            else:
                urls.dropped += 1
    return urls


@functools.lru_cache(maxsize=256)
def _compile_all(patterns: tuple[str, ...]) -> tuple[TargetPattern, ...]:
    return tuple(compile_target(p) for p in patterns)


def allowed_by(url: ParsedUrl, patterns: Iterable[TargetPattern]) -> bool:
    """Whether *url* matches any of *patterns*."""
    return any(p.matches(url) for p in patterns)


def check_url(
    url: str,
    settings: Settings,
    *,
    max_length: int | None = None,
    allow_userinfo: bool = False,
) -> str | None:
    """Return ``None`` when *url* may be fetched, else a short reason to log.

    Checked in this order: length, characters (no control characters, blanks,
    backslashes or non-ASCII anywhere), absolute ``http``/``https`` with a
    host, userinfo, then ``settings.allow_targets`` when it is not empty.
    A pattern that fails to compile refuses every URL (fail closed; the
    config parser reports it at load time).

    :param url: one target URL or redirect ``Location``, as received.
    :param settings: the request's settings (for ``allow_targets``).
    :param max_length: the longest URL accepted, in characters; ``None``:
        ``settings.max_url_length`` (``ReproxyMaxUrlLength``, 8192: a
        presigned URL with a session token is longer than 2,048).
    :param allow_userinfo: accept ``user:password@`` in the authority.
    """
    if max_length is None:
        max_length = settings.max_url_length
    if len(url) > max_length:
        return f"URL longer than {max_length}"
    reason = _check(url, settings.allow_targets, allow_userinfo)
    if reason != _OUTSIDE:
        return reason
    where = settings.origin("allow_targets")
    if where is None:
        return "outside ReproxyAllowTargets"
    return f"outside ReproxyAllowTargets (defined at {where})"


_OUTSIDE = "outside ReproxyAllowTargets"


@functools.lru_cache(maxsize=4096)
def _check(
    url: str, allow_targets: tuple[str, ...], allow_userinfo: bool
) -> str | None:
    # A pure function of its strings, memoised: popular objects' URLs repeat,
    # and parsing one is a fifth of a small reproxy's CPU (issue 16).
    reason = bad_char(url)
    if reason is not None:
        return reason
    try:
        parsed = parse_url(url)
    except ValueError as exc:
        return str(exc)
    if parsed.userinfo and not allow_userinfo:
        return "userinfo in URL"
    if not allow_targets:
        return None
    try:
        patterns = _compile_all(allow_targets)
    except ValueError as exc:
        return str(exc)
    return None if allowed_by(parsed, patterns) else _OUTSIDE
