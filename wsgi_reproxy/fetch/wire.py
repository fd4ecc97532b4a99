"""HTTP/1.1 responses read the way a proxy must: strictly (RFC 9112).

http.client (under urllib3) is a lenient *client*: it takes a ``103 Early
Hints`` for the final answer, splits a header value on a bare CR, passes a
``Content-Length`` that ``Transfer-Encoding`` overrides, and accepts ``+20``
as a length.  A proxy that does so hands one response's bytes to the next
request on the connection.  So the response head and the body framing are
parsed here, on the socket of a urllib3 connection, and any doubt fails the
try instead of being guessed at::

    reader = SocketReader(conn.sock)
    head = read_head(reader, "GET", deadline=time.monotonic() + 30, read_timeout=30)
    head.status, head.headers, head.framing, head.length

The body is read by :class:`Body`, which knows exactly where the response
ends, and so whether the connection may be reused.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

#: Longest response head accepted (status line and headers, interim ones
#: each): nginx's ``large_client_header_buffers`` scale for responses.
MAX_HEAD = 64 * 1024

#: Header lines accepted in one head (http.client's limit, which the
#: previous version enforced through urllib3).
MAX_HEADERS = 100

#: Interim (1xx) responses skipped before the final one, at most.
MAX_INTERIM = 16

#: Longest chunk-size line, chunk extensions included.
MAX_CHUNK_LINE = 4096

#: Bytes asked of the socket per receive while reading a head.
_RECV = 64 * 1024

# RFC 9112 §4: HTTP-version SP 3DIGIT SP reason-phrase; the space before an
# empty reason is often missing in the wild and is accepted.
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([\t !-~\x80-\xff]*))?")
# RFC 9110 §5.1/§5.5: field-name is a token; field-value is VCHAR, obs-text,
# SP and HTAB only: no CR, LF, NUL or other control character.
_VALUE = rb"(?:[!-~\x80-\xff]+(?:[ \t]+[!-~\x80-\xff]+)*)?"
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(" + _VALUE + rb")[ \t]*")
_DIGITS = re.compile(rb"[0-9]+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n\x00]*)?")


class FramingError(Exception):
    """The target's response cannot be framed with certainty: a failed try."""


class StaleConnection(FramingError):
    """A reused connection closed before sending any response byte."""


class SocketReader:
    """Buffered reads from one socket, with a deadline when asked for.

    :param sock: a connected socket (plain or TLS).
    """

    __slots__ = ("sock", "buf", "received")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.received = 0  # bytes of this response seen so far

    def fill(self, timeout: float) -> bool:
        """Receive more bytes into the buffer; ``False`` at end of stream."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.received += len(data)
        self.buf += data
        return True

    def read(self, size: int, timeout: float) -> bytes:
        """Up to *size* bytes: fewer only at end of stream."""
        buf = self.buf
        if len(buf) >= size:
            self.buf = buf[size:]
            return buf[:size]
        # One allocation, filled in place, then one copy into bytes (WSGI
        # servers accept bytes only).
        out = bytearray(size)
        view = memoryview(out)
        have = len(buf)
        view[:have] = buf
        self.buf = b""
        sock = self.sock
        sock.settimeout(timeout)
        while have < size:
            n = sock.recv_into(view[have:], size - have)
            if not n:
                break
            have += n
        self.received += have - len(buf)
        view.release()
        return bytes(out[:have]) if have < size else bytes(out)

    def readline(self, limit: int, timeout: float) -> bytes:
        """One line without its CRLF (or LF); :class:`FramingError` past *limit*."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 1 :]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buf) > limit:
                raise FramingError("line too long")
            if not self.fill(timeout):
                raise FramingError("connection closed inside the body framing")


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
        for key, value in self.headers:
            if key.lower() == name:
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
    if b"\r" in block.replace(b"\r\n", b""):
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
        f = _FIELD.fullmatch(line)
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


class Body:
    """Reads one response body to exactly where its framing says it ends.

    :param reader: the connection's reader, positioned after the head.
    :param head: the response's head.
    :param read_timeout: the most to wait for any one receive.
    """

    __slots__ = (
        "reader",
        "framing",
        "remaining",
        "timeout",
        "done",
        "_chunk_left",
        "_broken",
    )

    def __init__(self, reader: SocketReader, head: Head, read_timeout: float) -> None:
        self.reader = reader
        self.framing = head.framing
        self.remaining: int | None = head.length
        self.timeout = read_timeout
        self.done = head.framing == "none" or head.length == 0
        self._chunk_left = 0
        self._broken = False

    def read(self, size: int) -> bytes:
        """Up to *size* body bytes; ``b""`` once the body has ended.

        :raise FramingError: when the target broke the framing or closed
            early (the body is then incomplete).
        """
        if self.done or size <= 0:
            return b""
        if self.framing == "length":
            assert self.remaining is not None
            want = min(size, self.remaining)
            data = self.reader.read(want, self.timeout) if not self._broken else b""
            self.remaining -= len(data)
            if self.remaining == 0:
                self.done = True
            elif len(data) < want:
                if data:
                    # Hand over what arrived; the next read reports the break.
                    self._broken = True
                    return data
                raise FramingError(
                    f"connection closed with {self.remaining} body bytes missing"
                )
            return data
        if self.framing == "close":
            data = self.reader.read(size, self.timeout)
            if len(data) < size:
                self.done = True
            return data
        return self._read_chunked(size)

    def read_some(self, size: int) -> bytes:
        """Up to *size* body bytes, at least one unless the body is empty,
        without waiting for more than one receive's worth."""
        if self.done:
            return b""
        reader = self.reader
        if self.framing == "chunked" and self._chunk_left == 0:
            self._read_chunked(0)  # the size line (and the end, if it is 0)
            if self.done:
                return b""
        if not reader.buf and not reader.fill(self.timeout):
            if self.framing == "close":
                self.done = True
                return b""
            raise FramingError("connection closed before the first body byte")
        size = min(size, len(reader.buf))
        if self.framing == "chunked":
            size = min(size, self._chunk_left)
        return self.read(size)

    def _read_chunked(self, size: int) -> bytes:
        parts: list[bytes] = []
        want = size
        reader = self.reader
        while not self.done:
            if self._chunk_left == 0:
                line = reader.readline(MAX_CHUNK_LINE, self.timeout)
                m = _CHUNK_SIZE.fullmatch(line)
                if m is None:
                    raise FramingError(f"bad chunk size line {line[:40]!r}")
                self._chunk_left = int(m.group(1), 16)
                if self._chunk_left == 0:
                    self._trailers()
                    self.done = True
                    break
            if want <= 0:
                break
            n = min(want, self._chunk_left)
            data = reader.read(n, self.timeout)
            if len(data) < n:
                raise FramingError("connection closed inside a chunk")
            self._chunk_left -= n
            want -= n
            parts.append(data)
            if not self._chunk_left and reader.readline(2, self.timeout) != b"":
                raise FramingError("chunk data not followed by CRLF")
        return b"".join(parts)

    def _trailers(self) -> None:
        for _ in range(100):
            line = self.reader.readline(MAX_CHUNK_LINE, self.timeout)
            if not line:
                return
            if _FIELD.fullmatch(line) is None:
                raise FramingError("bad trailer line")
        raise FramingError("too many trailer lines")

    @property
    def clean(self) -> bool:
        """Read to its end with nothing after it: the connection is reusable."""
        return self.done and not self.reader.buf
