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
  encoded ``/``, ``\\``, ``.`` or ``..`` segment never matches: targets
  disagree on whether to decode them, so the URL could name a file outside
  the prefix on one and inside on another.
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

# scheme ":" "//" authority path rest; the authority ends where urllib3's does.
_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(//([^/?#]*)([^?#]*))?(.*)", re.S)
# A DNS label as storage hosts spell them; "_" is allowed for container names.
_LABEL_RE = re.compile(r"[a-z0-9_\-]+")
_PATTERN_LABEL_RE = re.compile(r"[a-z0-9_\-*]+")
_NUMERIC_LABEL_RE = re.compile(r"0x[0-9a-f]*|[0-9]+")
_ESCAPE_RE = re.compile(r"%(.{0,2})")
_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
# Encoded NUL, LF and CR: header-injection vectors for a target that decodes.
_ENCODED_CONTROLS = ("%00", "%0A", "%0D")


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A target URL (or pattern), parsed and normalised for matching.

    :param scheme: ``"http"`` or ``"https"``, lower case.
    :param host: lower case, one trailing dot stripped; an IPv6 address in its
        compressed form without brackets.
    :param host_kind: ``"name"``, ``"ipv4"`` or ``"ipv6"``.
    :param port: explicit, the scheme's default when the URL has none;
        ``None`` only for a pattern's ``:*``.
    :param path: normalised path, ``/`` when the URL has none.
    :param plain_path: ``False`` when the raw path holds an encoded ``.``
        or ``..`` segment or an encoded ``/`` or ``\\``, which targets read
        differently (such a URL matches only a root prefix).
    :param userinfo: whether the URL carried ``user[:password]@``.
    :param rest: the query and fragment, as written.
    """

    scheme: str
    host: str
    host_kind: HostKind
    port: int | None
    path: str
    plain_path: bool = True
    userinfo: bool = False
    rest: str = ""


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
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return "control character in URL"
        if ch.isspace():
            return "blank in URL"
        if code > 0x7F:
            # IDNA would fold look-alikes ("\uff0e" -> ".") after our check.
            return "non-ASCII character in URL"
        if ch == "\\":
            # urllib3 ends the authority at a backslash; browsers read "/".
            return "backslash in URL"
    upper = url.upper()
    if any(code in upper for code in _ENCODED_CONTROLS):
        return "encoded control character in URL"
    return None


def _normalise_path(path: str) -> tuple[str, bool]:
    """RFC 3986 §6.2.2: decode unreserved escapes, upper-case the others,
    remove dot segments (§5.2.4).  Returns ``(path, plain)``; raises
    ``ValueError`` on a bad escape."""

    def unescape(m: re.Match[str]) -> str:
        pair = m.group(1)
        if len(pair) != 2 or not _HEX.issuperset(pair):
            raise ValueError("bad percent-escape in path")
        ch = chr(int(pair, 16))
        return ch if ch in _UNRESERVED else "%" + pair.upper()

    raw = (path or "/").split("/")[1:]
    segments = [_ESCAPE_RE.sub(unescape, segment) for segment in raw]
    plain = all(
        (seg not in (".", "..") or seg == r) and "%2F" not in seg and "%5C" not in seg
        for seg, r in zip(segments, raw, strict=True)
    )
    out: list[str] = []
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and out:
                out.pop()
            if i == len(segments) - 1:
                out.append("")  # "/a/b/.." is the directory "/a/"
        else:
            out.append(segment)
    return "/" + "/".join(out), plain


def _parse_host(host: str, *, pattern: bool) -> tuple[str, HostKind]:
    """Normalise a host; raises ``ValueError`` with a short reason."""
    if host.startswith("["):
        literal = host[1:-1]
        if pattern and "*" in literal:
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
    host = host[:-1] if host.endswith(".") else host
    labels = host.split(".")
    label_re = _PATTERN_LABEL_RE if pattern else _LABEL_RE
    if not all(label_re.fullmatch(label) for label in labels):
        raise ValueError("bad host")
    if pattern and all(label == "*" or label.isdigit() for label in labels):
        # An IPv4 glob: four decimal octets or "*", written canonically.
        ok = len(labels) == 4 and all(
            label == "*" or str(int(label)) == label and int(label) < 256
            for label in labels
        )
        if "*" in host and not ok:
            raise ValueError("bad IPv4 pattern (write 10.0.0.*)")
        if "*" in host:
            return host, "ipv4"
    # WHATWG URL "ends in a number": such a host is an IPv4 address or
    # nothing, and only the canonical dotted quad is accepted because
    # getaddrinfo() reads "010" as octal and "167772161" as 10.0.0.1.
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(host)), "ipv4"
        except ValueError:
            raise ValueError("non-canonical IPv4 address") from None
    return host, "name"


def _parse(url: str, *, pattern: bool = False) -> ParsedUrl:
    """Parse *url* (or a pattern); raises ``ValueError`` with a reason."""
    m = _URL_RE.fullmatch(url)
    if m is None or m.group(2) is None:
        raise ValueError("not absolute")
    scheme, authority, path, rest = m.group(1).lower(), *m.group(3, 4, 5)
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"scheme {scheme!r} not allowed")
    # urllib3 (like RFC 3986) ends userinfo at the *last* "@".
    userinfo, at, hostport = authority.rpartition("@")
    host, port_text = hostport, None
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        if end == 0:
            raise ValueError("bad IPv6 literal")
        host, tail = hostport[:end], hostport[end:]
        if tail and not tail.startswith(":"):
            raise ValueError("bad host")
        port_text = tail[1:] if tail else None
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    if not host:
        raise ValueError("no host")
    host, kind = _parse_host(host, pattern=pattern)
    port: int | None = DEFAULT_PORTS[scheme]
    if pattern and port_text == "*":
        port = None
    elif port_text is not None:
        if not (port_text.isdigit() and 0 < int(port_text) < 65536):
            raise ValueError("bad port")
        port = int(port_text)
    norm_path, plain = _normalise_path(path)
    return ParsedUrl(scheme, host, kind, port, norm_path, plain, bool(at), rest)


def parse_url(url: str) -> ParsedUrl:
    """Parse and normalise a target URL; raise ``ValueError`` with a short
    reason when it is not an absolute ``http``/``https`` URL with a host.

    Character-level checks (control characters, blanks) are
    :func:`check_url`'s; call that for a full verdict.
    """
    return _parse(url)


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
        reason = _bad_char(pattern)
        if reason is not None:
            raise ValueError(reason)
        parsed = _parse(pattern, pattern=True)
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
