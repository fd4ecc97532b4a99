"""The check of an idle pooled connection before reuse: one ``poll(0)``.

A node may send bytes on a kept-alive connection after its response ended,
or close it.  Before a pooled connection carries another request, urllib3
asks whether its socket is readable (bytes, end of stream) or in error;
if so the connection is dropped, so such bytes are never read as the next
request's response (SPEC §4.10, issue 11).  :func:`has_pending` asks the
same question with the same ``poll`` and timeout 0, but under gevent with
the *unpatched* ``select.poll``: gevent's creates watchers and switches to
its hub for a question that one non-blocking system call answers (7 % of a
1 KiB reproxy's CPU, issue 16)::

    has_pending(sock)    # True: readable or in error, do not reuse

``gevent`` is never imported here: the original ``poll`` is looked up only
when ``gevent.monkey`` is already loaded and has replaced ``select.poll``.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable
from typing import Any

from urllib3.util.wait import wait_for_read

#: ``(the select.poll seen, the native poll to use for it)``; recomputed when
#: ``select.poll`` changes (patching after import).
_resolved: tuple[object, Callable[[], Any] | None] = (None, None)


def _native_poll() -> Callable[[], Any] | None:
    """The C ``select.poll`` under any gevent patching; ``None`` if absent."""
    global _resolved
    current = getattr(select, "poll", None)
    seen, native = _resolved
    if seen is current and current is not None:
        return native
    native = current
    monkey = sys.modules.get("gevent.monkey")
    if (
        monkey is not None
        and current is not None
        and monkey.is_object_patched("select", "poll")
    ):
        native = monkey.get_original("select", "poll")
    _resolved = (current, native)
    return native


def has_pending(sock: Any) -> bool:
    """Whether an idle socket is readable or in error, without waiting.

    Exactly urllib3's ``wait_for_read(sock, timeout=0)``: ``POLLIN``
    registered, and any event at all (``POLLIN``, ``POLLHUP``, ``POLLERR``,
    ``POLLNVAL``) counts.  Where there is no ``poll`` (Windows, eventlet)
    urllib3's own check runs.
    """
    poll = _native_poll()
    if poll is None:
        return wait_for_read(sock, timeout=0.0)
    poller = poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
