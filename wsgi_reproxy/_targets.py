"""Which reproxy target URLs may be fetched: input limits and the allow-list.

An ``X-Reproxy-Url`` is an outbound request chosen by the application (and by
anyone who can influence the URL it builds).  Every URL, and every redirect
hop, goes through :func:`check_url` before a byte is sent::

    reason = check_url(url, settings)
    if reason is not None:
        log.warning("reproxy: skipping %s: %s", url, reason)

The URL is parsed once by :mod:`wsgi_reproxy._urls` (a strict parser that
agrees with urllib3's where it accepts a URL and refuses it where the two
could disagree).  Matching compares the parsed, normalised URL with the
parsed pattern, never raw strings.

``ReproxyAllowTargets`` patterns (SPEC §3) are URL prefixes
``scheme://host[:port][/path-prefix]``:

* the scheme is ``http`` or ``https`` and must be equal (case-insensitive);
* the host is compared label by label after lower-casing and stripping one
  trailing dot; a ``*`` matches any run of characters *inside one label* and
  never a ``.``, so ``*.blob.internal`` matches ``a.blob.internal`` but not
  ``blob.internal``, ``a.b.blob.internal`` or ``blob.internal.evil`` (the
  one-label rule of TLS wildcards, RFC 6125 §6.4.3).  A host of exactly ``*``
  matches any host, names and IP literals alike;
* an IPv4 pattern such as ``10.0.0.*`` matches only canonical dotted-quad
  URLs; a URL host whose last label is numeric but is not a canonical IPv4
  address (``0x0a.0.0.1``, ``010.0.0.1``, ``167772161``) is refused outright,
  because ``getaddrinfo`` would read it as some other address;
* IPv6 literals (``[::1]``) are compared as addresses and take no ``*``;
* a missing port means the scheme's default (80, 443); ``:*`` means any port;
* the path prefix (``/`` when missing) matches at a segment boundary:
  ``/dev`` and ``/dev/`` both match ``/dev/1.fid`` and neither matches
  ``/devices``; ``/dev`` also matches ``/dev`` itself.  The URL path is
  normalised first (RFC 3986 §6.2.2: unreserved percent-escapes decoded,
  dot segments removed) and, under a non-root prefix, a URL path holding an
  encoded ``/``, ``\\``, ``.`` or ``..`` segment never matches: targets
  disagree on whether to decode them, so the URL could name a file outside
  the prefix on one and inside on another.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._settings import Settings
from ._urls import HostKind, ParsedUrl, bad_char, parse_pattern, parse_url

__all__ = [
    "ParsedUrl",
    "SplitUrls",
    "TargetPattern",
    "check_url",
    "compile_target",
    "parse_url",
    "split_urls",
]


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


@dataclass(frozen=True, slots=True)
class TargetPattern:
    """One compiled ``ReproxyAllowTargets`` prefix; see the module docs.

    :param text: the pattern as written in the config.
    :param scheme: lower-case scheme.
    :param host: ``None`` for ``*`` (any host); else the normalised host.
    :param host_kind: the kind of host the pattern can match.
    :param labels: per-label regexes for a name or IPv4 pattern with ``*``.
    :param port: ``None`` for ``:*``.
    :param path: normalised path prefix, no trailing ``/`` (``""`` for root).
    """

    text: str
    scheme: str
    host: str | None
    host_kind: HostKind
    labels: tuple[re.Pattern[str], ...] | None
    port: int | None
    path: str

    def matches(self, url: ParsedUrl) -> bool:
        """Whether the parsed *url* is inside this prefix."""
        if url.scheme != self.scheme:
            return False
        if self.port is not None and url.port != self.port:
            return False
        if self.host is not None:
            if self.labels is None:
                if url.host_kind != self.host_kind or url.host != self.host:
                    return False
            else:
                # "10.0.0.*" must not match the *name* "10.0.0.a".
                if url.host_kind == "ipv6" or (
                    self.host_kind == "ipv4" and url.host_kind != "ipv4"
                ):
                    return False
                parts = url.host.split(".")
                if len(parts) != len(self.labels) or not all(
                    rx.fullmatch(part)
                    for rx, part in zip(self.labels, parts, strict=True)
                ):
                    return False
        if not self.path:
            return True
        if not url.plain_path:
            return False
        return url.path == self.path or url.path.startswith(self.path + "/")


def _label_regex(label: str, kind: HostKind) -> re.Pattern[str]:
    # A "*" never matches "." (labels are compared one by one).  Alone it
    # must match a whole non-empty label; inside a label it may match nothing.
    chars = "[0-9]" if kind == "ipv4" else "[a-z0-9_\\-]"
    if label == "*":
        return re.compile(chars + "+")
    return re.compile((chars + "*").join(re.escape(p) for p in label.split("*")))


@functools.lru_cache(maxsize=1024)
def compile_target(pattern: str) -> TargetPattern:
    """Compile one ``ReproxyAllowTargets`` value.

    :raises ValueError: with a readable message naming the pattern, e.g.
        ``bad ReproxyAllowTargets pattern 'ftp://x/': scheme 'ftp' not allowed``.
    """
    try:
        reason = bad_char(pattern)
        if reason is not None:
            raise ValueError(reason)
        parsed = parse_pattern(pattern)
        if parsed.userinfo:
            raise ValueError("userinfo not allowed")
        if parsed.rest:
            raise ValueError("query or fragment not allowed")
    except ValueError as exc:
        raise ValueError(
            f"bad ReproxyAllowTargets pattern {pattern!r}: {exc}"
        ) from None
    host, kind = parsed.host, parsed.host_kind
    labels: tuple[re.Pattern[str], ...] | None = None
    if host != "*" and "*" in host:
        labels = tuple(_label_regex(label, kind) for label in host.split("."))
    return TargetPattern(
        text=pattern,
        scheme=parsed.scheme,
        host=None if host == "*" else host,
        host_kind=kind,
        labels=labels,
        port=parsed.port,
        path=parsed.path.rstrip("/"),
    )


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
    max_length: int = 2048,
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
    :param max_length: the longest URL accepted, in characters.
    :param allow_userinfo: accept ``user:password@`` in the authority.
    """
    if len(url) > max_length:
        return f"URL longer than {max_length}"
    reason = bad_char(url)
    if reason is not None:
        return reason
    try:
        parsed = parse_url(url)
    except ValueError as exc:
        return str(exc)
    if parsed.userinfo and not allow_userinfo:
        return "userinfo in URL"
    if not settings.allow_targets:
        return None
    try:
        patterns = _compile_all(settings.allow_targets)
    except ValueError as exc:
        return str(exc)
    if allowed_by(parsed, patterns):
        return None
    where = settings.origin("allow_targets")
    if where is None:
        return "outside ReproxyAllowTargets"
    return f"outside ReproxyAllowTargets (defined at {where})"
