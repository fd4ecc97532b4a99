"""HTTP/1.1 bodies read the way a proxy must: to exactly where they end.

The socket of a pooled urllib3 connection is read through a
:class:`SocketReader`; :mod:`.head` reads and checks the response head on it,
and :class:`Body` reads the body its framing describes (a length, chunked,
or until close), so the connection is reused only when nothing of this
response is left on it (RFC 9112 §6.3)::

    reader = SocketReader(conn.sock)
    head = read_head(reader, "GET", deadline=time.monotonic() + 30, read_timeout=30)
    body = Body(reader, head, read_timeout=30)
    body.read(65536), body.clean

Why not http.client: it takes a ``103 Early Hints`` for the answer, splits a
header on a bare CR, and accepts ``Content-Length: +20``; a proxy doing so
hands one response's bytes to the next request on the connection.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .head import Head

#: Longest chunk-size line, chunk extensions included.
MAX_CHUNK_LINE = 4096

#: Bytes asked of the socket per receive while reading a head: enough for a
#: head and a small body in one receive, and no more than a slow client's
#: first body read (fetch.body), so body bytes taken with the head do not
#: sit in this buffer for each of thousands of slow downloads (issue 12).
_RECV = 16 * 1024

# RFC 9110 §5.1/§5.5: field-name is a token; field-value is VCHAR, obs-text,
# SP and HTAB only: no CR, LF, NUL or other control character.
_VALUE = rb"(?:[!-~\x80-\xff]+(?:[ \t]+[!-~\x80-\xff]+)*)?"
FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(" + _VALUE + rb")[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n\x00]*)?")


class FramingError(Exception):
    """The target's response cannot be framed with certainty: a failed try."""


class StaleConnection(FramingError):
    """A reused connection closed before sending any response byte."""


class SocketReader:
    """Buffered reads from one socket, with a deadline when asked for.

    :param sock: a connected socket (plain or TLS).
    """

    __slots__ = ("sock", "buf", "received", "_timeout")

    def __init__(self, sock: socket.socket, timeout: float | None = None) -> None:
        self.sock = sock
        self.buf = b""
        self.received = 0  # bytes of this response seen so far
        self._timeout = timeout  # what the socket is set to, when known

    def settimeout(self, timeout: float) -> None:
        """Set the socket's timeout, skipping the call when it is unchanged
        (under gevent each call is Python code: issue 16's profile)."""
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def fill(self, timeout: float) -> bool:
        """Receive more bytes into the buffer; ``False`` at end of stream."""
        self.settimeout(timeout)
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
        self.settimeout(timeout)
        while have < size:
            n = sock.recv_into(view[have:], size - have)
            if not n:
                break
            have += n
        self.received += have - len(buf)
        view.release()
        return bytes(out[:have]) if have < size else bytes(out)

    def read_some(self, size: int, timeout: float) -> bytes:
        """Up to *size* bytes, what one receive gives; ``b""`` at end of stream.

        Nothing is allocated while it waits for the socket under gevent
        (whose ``recv`` waits between non-blocking tries), where
        :meth:`read` parks with its whole buffer: the difference, in each
        of thousands of slow downloads when the storage node lags (issue 12).
        """
        buf = self.buf
        if buf:
            self.buf = buf[size:]
            return buf[:size]
        self.settimeout(timeout)
        data = self.sock.recv(size)
        self.received += len(data)
        return data

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

    def read(self, size: int, *, partial: bool = False) -> bytes:
        """Up to *size* body bytes; ``b""`` once the body has ended.

        :param partial: return what one receive gives rather than wait for
            all of *size* (``b""`` still only at the body's end).
        :raise FramingError: when the target broke the framing or closed
            early (the body is then incomplete).
        """
        if self.done or size <= 0:
            return b""
        if self.framing == "length":
            assert self.remaining is not None
            want = min(size, self.remaining)
            if self._broken:
                data = b""
            elif partial:
                data = self.reader.read_some(want, self.timeout)
            else:
                data = self.reader.read(want, self.timeout)
            self.remaining -= len(data)
            if self.remaining == 0:
                self.done = True
            elif not data or (len(data) < want and not partial):
                if data:
                    # Hand over what arrived; the next read reports the break.
                    self._broken = True
                    return data
                raise FramingError(
                    f"connection closed with {self.remaining} body bytes missing"
                )
            return data
        if self.framing == "close":
            if partial:
                data = self.reader.read_some(size, self.timeout)
                self.done = not data
            else:
                data = self.reader.read(size, self.timeout)
                self.done = len(data) < size
            return data
        return self._read_chunked(size)

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
            if FIELD.fullmatch(line) is None:
                raise FramingError("bad trailer line")
        raise FramingError("too many trailer lines")

    @property
    def clean(self) -> bool:
        """Read to its end with nothing after it: the connection is reusable."""
        return self.done and not self.reader.buf
