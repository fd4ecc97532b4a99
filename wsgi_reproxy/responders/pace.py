"""Read from the target only what the client's socket can take now.

While a client drains slowly, every body byte read from the storage node
and not yet taken by the client's kernel buffer sits in this process: the
WSGI server's ``sendall`` holds the chunk until its last byte is accepted.
A 16 KiB read was a third of what a slow download cost in all (issue 12).
Left on the storage connection the same bytes cost nothing here: they wait
in the kernel's receive buffer, and TCP's flow control holds the node back
-- what nginx does when its proxy buffers are full.

So when the WSGI server hands over the client socket (gunicorn's
``environ["gunicorn.socket"]``, TCP, HTTP/1.x) on Linux, :class:`ClientPace`
sizes each body read to what the socket takes now without waiting, and
waits for it to become writable when it takes nothing; the send buffer's
size and what is queued in it, as the kernel counts them, come from
``SO_MEMINFO``.  Where the send tries first (gevent's, a blocking
socket's) that is the whole buffer; Linux then reports the socket
writable again once a third of it is free (``sk_stream_is_writeable``),
so each wait lasts until the client took that much, not one
acknowledgement.  Python's ``sendall`` on a socket with a timeout (sync
and gthread workers under ``--send-timeout``) polls for writability
*before* each send, so there reads stop at two thirds.  Sized this way no
send waits with a chunk in hand.  The wait is gevent's ``wait_write`` on a
gevent socket (a wait of this greenlet alone), else ``select.poll``: sync
and gthread workers block the thread in it as ``sendall`` would have.  A
paced read hands over what the node sent so far (``read1``) rather than
wait, buffer in hand, to fill its size.

gunicorn's ``for item in body`` keeps the last chunk referenced while it
asks for the next, so the chunk sent just before a wait is held through
it: reads near the limit stay short of it, and a piece of at most two
tails (and a little) crosses it alone.  A parked slow download holds
no more body bytes than that.  A client that takes nothing for the
socket's timeout (``serve --send-timeout``) gets :class:`TimeoutError`, as
from ``sendall``, and gunicorn closes the response and the connection::

    body.pace = client_pace(environ)  # None: read what the body asks for
"""

from __future__ import annotations

import select
import socket
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: ``getsockopt(SOL_SOCKET, SO_MEMINFO)`` (Linux 4.6+): nine u32 counters,
#: the send buffer's size at index 3 and the bytes queued in it at 5.
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55) if sys.platform == "linux" else None
_MEMINFO = struct.Struct("9I")
_TCP = (socket.AF_INET, socket.AF_INET6)

#: Non-empty once SO_MEMINFO answered in this process.
_probed: list[bool] = []

#: Below twice this budget the next piece is the last before the wait,
#: held by the WSGI server while the client drains: two or three more
#: reads and sends per wait buy 14 of the 16 KiB a full-size last chunk
#: would pin, and all of a larger read's (issue 12).
TAIL = 1024

#: What the last piece takes beyond the budget, so that it crosses the limit.
_OVER = 256


class ClientPace:
    """How many bytes the client's socket takes now, waiting for room.

    :param sock: the connected client socket (plain, TLS or gevent's).
    :raise OSError: the kernel has no ``SO_MEMINFO``.
    """

    __slots__ = ("_sock", "_fd", "_gevent")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._fd: int = sock.fileno()
        self._gevent = type(sock).__module__.startswith("gevent.")
        if not _probed:
            self.budget()  # OSError where the kernel has no SO_MEMINFO
            _probed.append(True)

    def budget(self) -> int:
        """Bytes a send may add without waiting; 0 or less when it would.

        A send that tries first (gevent's, or a blocking socket's) is taken
        while the send buffer has room; Python's ``sendall`` on a socket
        with a timeout polls first, and Linux calls a TCP socket writable
        only while at most two thirds of its buffer are queued.  Filling
        the whole buffer where that is allowed is what makes each wait
        last until a third of it drained, not one acknowledgement.
        """
        assert SO_MEMINFO is not None
        info = self._sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size)
        counters = _MEMINFO.unpack_from(info)
        size, queued = int(counters[3]), int(counters[5])
        if self._gevent or self._sock.gettimeout() is None:
            return size - queued
        return 2 * size // 3 - queued

    def size(self, want: int) -> int:
        """The size to read now, at most *want*; waits while there is no room.

        :raise TimeoutError: the client took nothing for the socket's timeout.
        """
        try:
            budget = self.budget()
        except OSError:
            # A closed or broken socket: let the WSGI server's send say so.
            return want
        if budget <= 0:
            self._wait()  # TimeoutError is an OSError: not caught above
            try:
                budget = max(0, self.budget())
            except OSError:
                return want
        # A send queues more than its bytes (the kernel counts each buffer's
        # bookkeeping too: 16 KiB sends queued 17.6 KiB each on loopback), so
        # a read stays a quarter short of the budget and the budget shrinks
        # in steps until a small piece crosses the limit.
        if budget >= want + want // 4 + TAIL:
            return want
        if budget > 2 * TAIL:
            return (budget - TAIL) * 3 // 4
        return min(want, budget + _OVER)

    def _wait(self) -> None:
        timeout = self._sock.gettimeout()  # None: as long as it takes
        if self._gevent:
            # gevent's own wait: nothing kept between waits (its patched
            # poll object would be, in each of thousands of downloads).
            from gevent.socket import wait_write  # type: ignore[import-untyped]

            wait_write(self._fd, timeout, _expired(timeout))
            return
        poll = select.poll()
        poll.register(self._fd, select.POLLOUT)
        if not poll.poll(None if timeout is None else max(1, int(timeout * 1000))):
            raise _expired(timeout)


def _expired(timeout: float | None) -> TimeoutError:
    return TimeoutError(f"client took nothing for {timeout} s")


def client_pace(environ: WSGIEnvironment) -> Callable[[int], int] | None:
    """:meth:`ClientPace.size` for this request's client, when one can be had.

    ``None`` off Linux (or before 4.6), without ``gunicorn.socket``
    (mod_wsgi, webtest), for a Unix socket (whose send queue Linux does not
    count this way) and for HTTP/2, whose one socket carries many
    responses.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None or SO_MEMINFO is None:
        return None
    if getattr(sock, "family", None) not in _TCP:
        # A Unix socket (behind a local proxy) keeps no send queue count.
        return None
    if not str(environ.get("SERVER_PROTOCOL", "")).startswith("HTTP/1"):
        return None
    try:
        # The bound method, not the instance: calling it from the body's
        # __next__ adds no C stack level, which every parked greenlet keeps
        # a copy of.
        return ClientPace(sock).size
    except (OSError, ValueError, AttributeError):
        return None
