"""Which reproxy target URLs may be fetched: input limits and the allow-list.

An ``X-Reproxy-Url`` is an outbound request chosen by the application (and by
anyone who can influence the URL it builds).  Every URL, and every redirect
hop, goes through :func:`check_url` before a byte is sent::

    reason = check_url(url, settings)
    if reason is not None:
        log.warning("reproxy: skipping %s: %s", url, reason)

The URL is parsed once by a strict parser written to agree with urllib3's
``parse_url`` wherever it accepts a URL (authority ends at the first ``/``,
``?`` or ``#``; userinfo ends at the *last* ``@``), and refused wherever the
two could disagree (backslashes, blanks, non-ASCII, ambiguous IPv4 forms).
Matching compares the parsed, normalised URL with the parsed pattern, never
raw strings.

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
  encoded ``/`` or ``\\`` never matches (a target that decodes them could
  climb out of the prefix).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ._settings import Settings

__all__ = [
    "ParsedUrl",
    "SplitUrls",
    "TargetPattern",
    "check_url",
    "compile_target",
    "parse_url",
    "split_urls",
]

#: Default ports made explicit so ``http://h/`` and ``http://h:80/`` compare
#: equal (RFC 3986 §6.2.3).
DEFAULT_PORTS = {"http": 80, "https": 443}

HostKind = Literal["name", "ipv4", "ipv6"]

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# A DNS label as storage hosts spell them; "_" is allowed for container names.
_LABEL_RE = re.compile(r"[a-z0-9_\-]+")
_PATTERN_LABEL_RE = re.compile(r"[a-z0-9_\-*]+")
_NUMERIC_LABEL_RE = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_PERCENT_RE = re.compile(r"%(.{0,2})")
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
# Encoded NUL, LF and CR: header-injection vectors for a target that decodes.
_ENCODED_CONTROLS = ("%00", "%0A", "%0D")
# Under a path prefix, a target that decodes these could leave the prefix.
_ENCODED_SEPARATORS = ("%2F", "%5C")


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A target URL, parsed and normalised for matching.

    :param scheme: ``"http"`` or ``"https"``, lower case.
    :param host: lower case, one trailing dot stripped; an IPv6 address in its
        compressed form without brackets.
    :param host_kind: ``"name"``, ``"ipv4"`` or ``"ipv6"``.
    :param port: explicit, the scheme's default when the URL has none.
    :param path: normalised path, ``/`` when the URL has none.
    :param userinfo: whether the URL carried ``user[:password]@``.
    """

    scheme: str
    host: str
    host_kind: HostKind
    port: int
    path: str
    userinfo: bool


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


def _bad_char(url: str) -> str | None:
    for ch in url:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F:
            return "control character in URL"
        if ch.isspace() or ch == " ":
            return "blank in URL"
        if code > 0x7F:
            # IDNA would fold look-alikes ("\uff0e" -> ".") after our check.
            return "non-ASCII character in URL"
        if ch == "\\":
            # urllib3 ends the authority at "\"; browsers read it as "/".
            return "backslash in URL"
    upper = url.upper()
    if any(code in upper for code in _ENCODED_CONTROLS):
        return "encoded control character in URL"
    return None


def _normalise_path(path: str) -> str:
    """RFC 3986 §6.2.2: decode unreserved escapes, upper-case the others,
    then remove dot segments (§5.2.4).  Raises ``ValueError`` on a bad
    escape."""

    def unescape(m: re.Match[str]) -> str:
        hexpair = m.group(1)
        if len(hexpair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in hexpair):
            raise ValueError("bad percent-escape in path")
        ch = chr(int(hexpair, 16))
        return ch if ch in _UNRESERVED else "%" + hexpair.upper()

    segments = (_PERCENT_RE.sub(unescape, path) or "/").split("/")[1:]
    out: list[str] = []
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and out:
                out.pop()
            if i == len(segments) - 1:
                out.append("")  # "/a/b/.." is the directory "/a/"
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("bad IPv6 literal")
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("bad host")
        return hostport[: end + 1], (rest[1:] if rest else None)
    host, sep, port = hostport.rpartition(":")
    return (host, port) if sep else (hostport, None)


def _parse_host(host: str, *, pattern: bool) -> tuple[str, HostKind]:
    """Normalise a host; raises ``ValueError`` with a short reason."""
    if host.startswith("["):
        literal = host[1:-1]
        if "*" in literal and pattern:
            raise ValueError("'*' not allowed in an IPv6 literal")
        if "%" in literal:
            raise ValueError("zone id in IPv6 literal")
        try:
            return ipaddress.IPv6Address(literal).compressed, "ipv6"
        except ValueError:
            raise ValueError("bad IPv6 literal") from None
    if "%" in host:
        raise ValueError("percent-encoded host")
    host = host.lower()
    if pattern and host == "*":
        return host, "name"
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    label_re = _PATTERN_LABEL_RE if pattern else _LABEL_RE
    if not host or not all(label_re.fullmatch(label) for label in labels):
        raise ValueError("bad host")
    # WHATWG URL "ends in a number": such a host is an IPv4 address or
    # nothing, and only the canonical dotted quad is accepted because
    # getaddrinfo() reads "010" as octal and "167772161" as 10.0.0.1.
    numeric_tail = _NUMERIC_LABEL_RE.fullmatch(labels[-1]) is not None
    if pattern and "*" in host:
        if all(label == "*" or label.isdigit() for label in labels):
            if len(labels) != 4 or not all(
                label == "*" or (str(int(label)) == label and int(label) < 256)
                for label in labels
            ):
                raise ValueError("bad IPv4 pattern (write 10.0.0.*)")
            return host, "ipv4"
        if numeric_tail:
            raise ValueError("non-canonical IPv4 address")
        return host, "name"
    if numeric_tail:
        try:
            return str(ipaddress.IPv4Address(host)), "ipv4"
        except ValueError:
            raise ValueError("non-canonical IPv4 address") from None
    return host, "name"


def _parse(
    url: str, *, pattern: bool
) -> tuple[str, str, HostKind, int | None, str, bool, str]:
    """Split *url* into (scheme, host, kind, port, path, userinfo, rest).

    ``port`` is ``None`` only for a pattern's ``:*``.  Raises ``ValueError``.
    """
    m = _SCHEME_RE.match(url)
    if m is None or not url[m.end() :].startswith("//"):
        raise ValueError("not absolute")
    scheme = m.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"scheme {scheme!r} not allowed")
    rest = url[m.end() + 2 :]
    end = len(rest)
    for delim in "/?#":
        pos = rest.find(delim)
        if 0 <= pos < end:
            end = pos
    authority, rest = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    host, port_text = _split_host_port(hostport)
    if not host:
        raise ValueError("no host")
    norm_host, kind = _parse_host(host, pattern=pattern)
    port: int | None
    if port_text is None:
        port = DEFAULT_PORTS[scheme]
    elif pattern and port_text == "*":
        port = None
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise ValueError("bad port")
    path_end = len(rest)
    for delim in "?#":
        pos = rest.find(delim)
        if 0 <= pos < path_end:
            path_end = pos
    path = _normalise_path(rest[:path_end])
    return scheme, norm_host, kind, port, path, bool(at), rest[path_end:]


def parse_url(url: str) -> ParsedUrl:
    """Parse and normalise a target URL; raise ``ValueError`` with a short
    reason when it is not an absolute ``http``/``https`` URL with a host.

    Character-level checks (control characters, blanks) are
    :func:`check_url`'s; call that for a full verdict.
    """
    scheme, host, kind, port, path, userinfo, _ = _parse(url, pattern=False)
    assert port is not None
    return ParsedUrl(scheme, host, kind, port, path, userinfo)


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
        upper = url.path.upper()
        if any(sep in upper for sep in _ENCODED_SEPARATORS):
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
        reason = _bad_char(pattern)
        if reason is not None:
            raise ValueError(reason)
        scheme, host, kind, port, path, userinfo, rest = _parse(pattern, pattern=True)
        if userinfo:
            raise ValueError("userinfo not allowed")
        if rest:
            raise ValueError("query or fragment not allowed")
    except ValueError as exc:
        raise ValueError(
            f"bad ReproxyAllowTargets pattern {pattern!r}: {exc}"
        ) from None
    any_host = host == "*"
    labels: tuple[re.Pattern[str], ...] | None = None
    if not any_host and "*" in host:
        labels = tuple(_label_regex(label, kind) for label in host.split("."))
    return TargetPattern(
        text=pattern,
        scheme=scheme,
        host=None if any_host else host,
        host_kind=kind,
        labels=labels,
        port=port,
        path=path.rstrip("/"),
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
    reason = _bad_char(url)
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
