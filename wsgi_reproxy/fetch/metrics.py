"""The metrics seam: one method call per event, and a no-op default.

Pass any object with these methods as ``ReproxyMiddleware(app, config,
metrics=...)`` to feed statsd, OpenTelemetry or Prometheus
(:class:`wsgi_reproxy.prometheus.PrometheusMetrics` is one)::

    class StatsdMetrics:
        def reproxy_finished(self, outcome, status, bytes, ttfb, duration):
            statsd.incr(f"reproxy.{outcome}")
            statsd.timing("reproxy.duration", duration * 1000)
        ...                       # every method of Metrics

Methods are called in the request's thread (or greenlet), after the event,
and must not raise; they should be cheap (a counter increment), since a
reproxy makes four to six of these calls.

Outcomes (``reproxy_finished``), one per reproxied request:

``served``      the first target tried sent the whole body;
``failover``    the whole body came from a later target, after failed tries;
``failed``      no target could serve: the client got 502 or 504;
``aborted``     the target broke off mid-body (the client's connection is
                aborted, SPEC §4.7);
``client-gone`` the server closed the body before its end: the client left.
"""

from __future__ import annotations

import functools
from typing import Literal, Protocol

Outcome = Literal["served", "failover", "failed", "aborted", "client-gone"]

#: Every outcome, in the order the module documentation gives them.
OUTCOMES: tuple[Outcome, ...] = (
    "served",
    "failover",
    "failed",
    "aborted",
    "client-gone",
)


class Metrics(Protocol):
    """What the middleware reports; implement every method."""

    def reproxy_finished(
        self,
        outcome: Outcome,
        status: int,
        bytes: int,
        ttfb: float | None,
        duration: float,
    ) -> None:
        """One reproxy ended.

        :param outcome: see the module documentation.
        :param status: the status the client got (the target's, or 502/504).
        :param bytes: body bytes sent to the client.
        :param ttfb: seconds from the first try to the chosen target's
            response head (``None`` when no target answered).
        :param duration: seconds from the first try to the end of the body
            (to the 502/504 when none answered).
        """

    def try_succeeded(self, host: str) -> None:
        """A target (``host:port``) answered acceptably; its body follows."""

    def try_failed(self, host: str, reason: str) -> None:
        """A try of a target (``host:port``) failed; *reason* as logged."""

    def allowlist_refused(self, host: str) -> None:
        """A URL (or redirect) outside ``ReproxyAllowTargets`` was not fetched."""

    def cache_hit(self) -> None:
        """An ``X-Reproxy-Cache-For`` entry answered without the app."""

    def cache_miss(self) -> None:
        """A cacheable request found no live entry."""

    def cache_eviction(self) -> None:
        """An entry was evicted to keep the cache within its bounds."""

    def transfer_started(self) -> None:
        """A target's body starts streaming to a client (one more in flight)."""

    def transfer_ended(self) -> None:
        """That body was closed, complete or not (one fewer in flight)."""


class NoMetrics:
    """The default: every event is dropped (an empty method call)."""

    def reproxy_finished(
        self,
        outcome: Outcome,
        status: int,
        bytes: int,
        ttfb: float | None,
        duration: float,
    ) -> None:
        pass

    def try_succeeded(self, host: str) -> None:
        pass

    def try_failed(self, host: str, reason: str) -> None:
        pass

    def allowlist_refused(self, host: str) -> None:
        pass

    def cache_hit(self) -> None:
        pass

    def cache_miss(self) -> None:
        pass

    def cache_eviction(self) -> None:
        pass

    def transfer_started(self) -> None:
        pass

    def transfer_ended(self) -> None:
        pass


#: The shared no-op instance.
NO_METRICS = NoMetrics()

#: The prefix :func:`~wsgi_reproxy.fetch.targets.check_url` gives a refusal
#: by the allow-list (as opposed to a malformed URL).
ALLOWLIST_REASON = "outside ReproxyAllowTargets"


@functools.lru_cache(maxsize=4096)
def target_host(url: str) -> str:
    """``"http://10.0.0.5:7500/dev/1.fid"`` -> ``"10.0.0.5:7500"``: the
    authority of an absolute URL, for per-host labels (no userinfo: URLs
    with one are refused before they are tried).  Memoised: asked on every
    try, of the same popular URLs (issue 16)."""
    rest = url.partition("//")[2]
    for end in "/?#":
        rest = rest.partition(end)[0]
    return rest.rpartition("@")[2] or "-"


def is_allowlist_refusal(reason: str) -> bool:
    """Whether a ``check_url`` reason (or a failed redirect's) is the
    allow-list's rather than a malformed URL's."""
    return ALLOWLIST_REASON in reason
