"""Response heads read strictly (RFC 9112): interim answers, headers, framing.

:func:`read_head` reads the final response head from a
:class:`~.wire.SocketReader` within one deadline, skipping interim ``1xx``
responses, and refuses anything whose framing a proxy cannot be sure of::

    head = read_head(reader, "GET", deadline=time.monotonic() + 30, read_timeout=30)
    head.status, head.headers, head.framing, head.length, head.keep_alive
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .wire import FIELD, FramingError, SocketReader, StaleConnection

#: Longest response head accepted (status line and headers, interim ones
#: each): nginx's ``large_client_header_buffers`` scale for responses.
MAX_HEAD = 64 * 1024

#: Header lines accepted in one head (http.client's limit, which the
#: previous version enforced through urllib3).
MAX_HEADERS = 100

#: Interim (1xx) responses skipped before the final one, at most.
MAX_INTERIM = 16

# RFC 9112 §4: HTTP-version SP 3DIGIT SP reason-phrase; the space before an
# empty reason is often missing in the wild and is accepted.
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([\t !-~\x80-\xff]*))?")
_DIGITS = re.compile(rb"[0-9]+")

# The same grammar over a whole head block decoded as latin-1, for the
# common head that is valid: one fullmatch checks every line and one findall
# yields the (name, value) pairs, instead of a regex and two decodes a line
# (issue 16).  Anything it refuses goes to the line-by-line parse, which
# names the fault; so the result is the same, only found sooner.
_FIELD_TEXT = FIELD.pattern.decode("latin-1")
_STATUS_TEXT = _STATUS_LINE.pattern.decode("latin-1")
# Groups 1-3 are the status line's; group 4 starts at the first header.
_HEAD_TEXT = re.compile(f"{_STATUS_TEXT}\\r?\\n((?:{_FIELD_TEXT}\\r?\\n)*)")
_FIELD_LINE = re.compile(f"{_FIELD_TEXT}\r?\n")


@dataclass(slots=True)
class Head:
    """A final response's head, checked.

    :param version: ``"1.1"`` or ``"1.0"``.
    :param headers: ``(name, value)`` pairs as received, except that framing
        headers are canonical: at most one ``Content-Length``, equal to the
        bytes the body holds, and no ``Transfer-Encoding``.
    :param framing: ``"none"`` (no body), ``"length"``, ``"chunked"`` or
        ``"close"`` (the body ends when the connection does).
    :param length: the body's length for ``"length"``, else ``None``.
    :param keep_alive: whether the connection may carry another request
        once the body is read to its end.
    """

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    framing: str
    length: int | None
    keep_alive: bool

    def get(self, name: str) -> str | None:
        """The first value of header *name* (case-insensitive), or ``None``."""
        name = name.lower()
        size = len(name)
        for key, value in self.headers:
            # The length first: most names differ in it (issue 16).
            if len(key) == size and key.lower() == name:
                return value
        return None


def _read_block(reader: SocketReader, deadline: float, read_timeout: float) -> bytes:
    """Bytes up to the blank line ending a head, all within *deadline*."""
    start = 0
    while True:
        buf = reader.buf
        # LF-only line ends are accepted (RFC 9112 §2.2 allows it); a bare CR
        # is refused when the lines are parsed.
        end = buf.find(b"\n\r\n", start)
        lf_end = buf.find(b"\n\n", start)
        if end < 0 or 0 <= lf_end < end:
            end, skip = lf_end, 2
        else:
            skip = 3
        if end >= 0:
            if end > MAX_HEAD:
                raise FramingError(f"response head longer than {MAX_HEAD} bytes")
            reader.buf = buf[end + skip :]
            return buf[: end + 1]
        if len(buf) > MAX_HEAD:
            raise FramingError(f"response head longer than {MAX_HEAD} bytes")
        start = max(0, len(buf) - 3)
        left = deadline - time.monotonic()
        if left <= 0:
            # ReproxyTimeout READ bounds the whole head, not each receive.
            raise TimeoutError("response head not complete within the read timeout")
        if not reader.fill(min(left, read_timeout)):
            if reader.received == 0:
                raise StaleConnection("connection closed before any response byte")
            raise FramingError("connection closed inside the response head")


def _parse_block(block: bytes) -> tuple[str, int, str, list[tuple[str, str]]]:
    text = block.decode("latin-1")
    m = _HEAD_TEXT.fullmatch(text)
    if m is not None:
        headers = _FIELD_LINE.findall(text, m.start(4))
        if len(headers) <= MAX_HEADERS:
            return "1." + m.group(1), int(m.group(2)), m.group(3) or "", headers
    return _parse_lines(block)


def _parse_lines(block: bytes) -> tuple[str, int, str, list[tuple[str, str]]]:
    """:func:`_parse_block` line by line: the one that says what is wrong."""
    if block.count(b"\r") != block.count(b"\r\n"):
        raise FramingError("bare CR in the response head")  # RFC 9112 §2.2
    if b"\x00" in block:
        raise FramingError("NUL in the response head")
    lines = block.split(b"\n")
    if len(lines) > MAX_HEADERS + 2:
        raise FramingError(f"more than {MAX_HEADERS} response header lines")
    status_line = lines[0].rstrip(b"\r")
    m = _STATUS_LINE.fullmatch(status_line)
    if m is None:
        raise FramingError(f"bad status line {status_line[:80]!r}")
    headers = []
    for raw in lines[1:]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: obsolete line folding; a proxy rejects or unfolds.
            raise FramingError("obsolete line folding in a response header")
        f = FIELD.fullmatch(line)
        if f is None:
            raise FramingError(f"bad response header line {line[:80]!r}")
        headers.append((f.group(1).decode("ascii"), f.group(2).decode("latin-1")))
    version = "1." + m.group(1).decode()
    reason = (m.group(3) or b"").decode("latin-1")
    return version, int(m.group(2)), reason, headers


def _framing(
    method: str, version: str, status: int, headers: list[tuple[str, str]]
) -> Head:
    lengths: list[str] = []
    codings: list[str] = []
    tokens: list[str] = []
    kept = []
    for name, value in headers:
        key = name.lower()
        if key == "content-length":
            lengths += [v.strip() for v in value.split(",")]
        elif key == "transfer-encoding":
            codings += [v.strip().lower() for v in value.split(",") if v.strip()]
        else:
            if key == "connection":
                tokens += [v.strip().lower() for v in value.split(",")]
            kept.append((name, value))
    keep_alive = "close" not in tokens and (version == "1.1" or "keep-alive" in tokens)
    length: int | None = None
    if lengths:
        if not all(_DIGITS.fullmatch(v.encode()) for v in lengths):
            raise FramingError(f"bad Content-Length {', '.join(lengths)!r}")
        if len(set(map(int, lengths))) != 1:
            raise FramingError(f"conflicting Content-Length {', '.join(lengths)!r}")
        length = int(lengths[0])
    # RFC 9112 §6.3 rule 1: these never have a body, whatever they say.
    if method == "HEAD" or status in (204, 304) or status < 200:
        if length is not None and method == "HEAD" and not codings:
            kept.append(("Content-Length", str(length)))  # HEAD: the GET's size
        return Head(version, status, "", kept, "none", 0, keep_alive)
    if codings:
        # RFC 9112 §6.3 rule 3: both is a smuggling attempt for a proxy.
        if lengths:
            raise FramingError("both Transfer-Encoding and Content-Length")
        if codings != ["chunked"]:
            # A proxy cannot pass a transfer coding on (it is hop-by-hop),
            # and nothing but chunked may end a response's framing.
            raise FramingError(
                f"Transfer-Encoding {', '.join(codings)!r} not supported"
            )
        return Head(version, status, "", kept, "chunked", None, keep_alive)
    if length is not None:
        kept.append(("Content-Length", str(length)))
        return Head(version, status, "", kept, "length", length, keep_alive)
    return Head(version, status, "", kept, "close", None, False)


def read_head(
    reader: SocketReader, method: str, *, deadline: float, read_timeout: float
) -> Head:
    """Read the final response head: interim 1xx are skipped, 101 refused.

    :param method: the request's method (a HEAD answer has no body).
    :param deadline: the monotonic time by which the whole head, interim
        responses included, must have arrived.
    :param read_timeout: the most to wait for any one receive.
    :raise FramingError: for anything that cannot be framed with certainty
        (:class:`StaleConnection` when nothing at all arrived).
    :raise TimeoutError: when the deadline or a receive timed out.
    """
    for _ in range(MAX_INTERIM + 1):
        version, status, reason, headers = _parse_block(
            _read_block(reader, deadline, read_timeout)
        )
        if status == 101:
            raise FramingError("101 Switching Protocols was never asked for")
        if 100 <= status < 200:
            continue  # RFC 9110 §15.2: interim; the final response follows
        if status < 100:
            raise FramingError(f"bad status {status}")
        head = _framing(method, version, status, headers)
        head.reason = reason
        return head
    raise FramingError(f"more than {MAX_INTERIM} interim responses")
