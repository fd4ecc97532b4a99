"""Target URLs parsed and normalised for matching, refused where parsers differ.

An ``X-Reproxy-Url`` (or a redirect ``Location``) is parsed once by a strict
parser written to agree with urllib3's ``parse_url`` wherever it accepts a
URL (authority ends at the first ``/``, ``?`` or ``#``; userinfo ends at the
*last* ``@``), and refused wherever the two could disagree (backslashes,
blanks, non-ASCII, ambiguous IPv4 forms)::

    bad_char("http://a b/")                          # 'blank in URL'
    parse_url("HTTP://Store.Example./a/../b").path   # '/b'

The host is lower-cased with one trailing dot stripped; a host whose last
label is numeric must be a canonical dotted-quad IPv4 address, because
``getaddrinfo`` reads ``010.0.0.1`` or ``167772161`` as some other address.
The path is normalised (RFC 3986 §6.2.2: unreserved percent-escapes
decoded, dot segments removed); an encoded ``/``, ``\\``, ``.`` or ``..``
segment, or a dot segment with path parameters (``..;x``, ``.;``, which
servlet containers read as ``..`` and ``.``), is remembered in
:attr:`ParsedUrl.plain_path`.  The same parser
reads ``ReproxyAllowTargets`` patterns (:func:`parse_pattern`), which may
also hold ``*``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

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
# A dot segment with path parameters ("..;x", ".;", "%2e%2e%3bx" once the
# unreserved escapes are decoded): RFC 3986 keeps it as a name, but servlet
# containers (Tomcat, Jetty) strip ";..." first and then read it as "..".
_PARAM_DOT_RE = re.compile(r"\.\.?(;|%3B)")
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
        or ``..`` segment, a ``.`` or ``..`` with path parameters (``..;x``,
        ``%2e%2e%3b``), or an encoded ``/`` or ``\\``, which targets read
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


def bad_char(url: str) -> str | None:
    """Why *url* holds a character no target URL may hold, or ``None``."""
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
        (seg not in (".", "..") or seg == r)
        and "%2F" not in seg
        and "%5C" not in seg
        and not _PARAM_DOT_RE.match(seg)
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
    :func:`bad_char`'s; :func:`~wsgi_reproxy.fetch.targets.check_url` runs both
    (and the allow-list) for a full verdict.
    """
    return _parse(url)


def parse_pattern(pattern: str) -> ParsedUrl:
    """Parse a ``ReproxyAllowTargets`` pattern as :func:`parse_url` parses a
    URL, also accepting ``*`` in the host and a port of ``*`` (``None``)."""
    return _parse(pattern, pattern=True)
