"""The ``ReproxyAllowTargets`` syntax: URL-prefix patterns compiled at load time.

The parser compiles every pattern once (a bad one is a ``ConfigError`` with
``file:line``); :mod:`wsgi_reproxy.fetch.targets` matches each request's URLs
against the result::

    compile_target("http://10.0.0.*:7500/dev/").matches(parse_url(url))

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
  encoded ``/``, ``\\``, ``.`` or ``..`` segment, or a ``.`` or ``..``
  segment with path parameters (``/dev/..;/admin``, ``/dev/%2e%2e;x/``,
  which Tomcat and Jetty read as ``/admin``), never matches: targets
  disagree on whether to decode them, so the URL could name a file outside
  the prefix on one and inside on another.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .urls import HostKind, ParsedUrl, bad_char, parse_pattern


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
