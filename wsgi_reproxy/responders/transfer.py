"""One reproxy's record: its outcome, its log line and its metrics events.

:class:`Transfer` is what the URL responder returns to the server: the
target's streaming body, passed through chunk by chunk, which on ``close()``
knows how the transfer ended (``served``, ``failover``, ``aborted``,
``client-gone``; see :mod:`wsgi_reproxy.fetch.metrics`), logs the one line
per reproxy with its structured fields and tells the metrics object::

    transfer = Transfer(upstream.body, record, log, metrics)
    return transfer          # the server iterates, then calls close()

Every reproxy line, this one and the 502/504 one, carries the same
``extra=`` fields (:func:`fields`), so a JSON formatter or a log shipper
needs no regex: ``reproxy_url`` (query redacted), ``status``, ``bytes``,
``ttfb``, ``duration``, ``tries``, ``outcome``, ``request_id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..exceptions import TruncatedBodyError, redact_query
from ..fetch.body import UpstreamBody
from ..fetch.metrics import Metrics, Outcome


@dataclass(frozen=True, slots=True)
class ReproxyRecord:
    """What is known of a reproxy when its target answered.

    :param path: the request's URL path (``SCRIPT_NAME + PATH_INFO``).
    :param url: the target URL that answered, unredacted.
    :param status: the target's status.
    :param tries: targets tried, the one that answered included.
    :param started: ``time.monotonic()`` just before the first try.
    :param ttfb: seconds from *started* to the target's response head.
    :param request_id: from ``X-Request-ID`` or the server, if any.
    :param show_query: ``ReproxyLogQuery On``: log the URL's query string.
    :param unread: what the line adds when the body was not read to its end.
    """

    path: str
    url: str
    status: int
    tries: int
    started: float
    ttfb: float
    request_id: str | None
    show_query: bool = False
    unread: str = " (incomplete)"


def fields(
    *,
    url: str | None,
    status: int,
    sent: int,
    ttfb: float | None,
    duration: float,
    tries: int,
    outcome: Outcome,
    request_id: str | None,
    show_query: bool = False,
) -> dict[str, Any]:
    """The ``extra=`` mapping of a reproxy log line (module documentation)."""
    if url is not None and not show_query:
        url = redact_query(url)
    return {
        "reproxy_url": url,
        "status": status,
        "bytes": sent,
        "ttfb": ttfb,
        "duration": duration,
        "tries": tries,
        "outcome": outcome,
        "request_id": request_id,
    }


class Transfer:
    """The WSGI response iterable of a reproxy: *body*'s chunks, then a report.

    :param body: the chosen target's streaming body.
    :param record: the reproxy so far.
    :param log: where the line goes (INFO; WARNING when the target broke off).
    :param metrics: told ``transfer_ended`` and ``reproxy_finished`` on close;
        the caller has already told it ``transfer_started``.
    """

    __slots__ = ("_body", "_record", "_log", "_metrics", "_broken", "_closed")

    def __init__(
        self,
        body: UpstreamBody,
        record: ReproxyRecord,
        log: logging.Logger,
        metrics: Metrics,
    ) -> None:
        self._body = body
        self._record = record
        self._log = log
        self._metrics = metrics
        self._broken = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            # The method, not next(): one C stack level less in every
            # parked greenlet's saved stack (issue 12).
            return self._body.__next__()
        except TruncatedBodyError:
            self._broken = True
            raise

    def close(self) -> None:
        """Close the body (idempotent), then log and report the outcome once."""
        if self._closed:
            return
        self._closed = True
        body = self._body
        try:
            body.close()
        finally:
            self._report(body.bytes_sent, body.complete)

    def _report(self, sent: int, complete: bool) -> None:
        record = self._record
        duration = time.monotonic() - record.started
        outcome: Outcome
        if complete:
            outcome = "failover" if record.tries > 1 else "served"
        else:
            outcome = "aborted" if self._broken else "client-gone"
        self._metrics.transfer_ended()
        self._metrics.reproxy_finished(
            outcome, record.status, sent, record.ttfb, duration
        )
        level = logging.WARNING if outcome == "aborted" else logging.INFO
        if not self._log.isEnabledFor(level):
            return
        self._log.log(
            level,
            "reproxied %s from %s: %d, %d bytes in %.3fs%s",
            record.path,
            record.url if record.show_query else redact_query(record.url),
            record.status, sent, duration, "" if complete else record.unread,
            extra=fields(
                url=record.url, status=record.status, sent=sent, ttfb=record.ttfb,
                duration=duration, tries=record.tries, outcome=outcome,
                request_id=record.request_id, show_query=record.show_query,
            ),
        )  # fmt: skip
