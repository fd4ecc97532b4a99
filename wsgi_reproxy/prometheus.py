"""Prometheus metrics for the middleware (the ``prometheus`` extra).

::

    pip install 'wsgi_reproxy[prometheus]'

    from wsgi_reproxy.prometheus import PrometheusMetrics

    application = ReproxyMiddleware(app, config, metrics=PrometheusMetrics())

Exposed (``wsgi_reproxy_`` prefix):

=====================================  ==========================================
``reproxies_total{outcome}``           served, failover, failed, aborted,
                                       client-gone (:mod:`~wsgi_reproxy.fetch.metrics`)
``tries_total{host}``                  target tries per storage host
``try_failures_total{host,reason}``    failed tries; reason: connect, timeout,
                                       status, size, redirect, broken, refused,
                                       other
``response_bytes``                     histogram of body bytes sent per reproxy
                                       (``_sum``: bytes served)
``ttfb_seconds``                       histogram: first try to the target's head
``duration_seconds``                   histogram: first try to the body's end
``transfers_in_flight``                gauge: bodies streaming now
``pool_connections{host,state}``       gauge: open / idle connections per host
``cache_hits_total`` ``cache_misses_total`` ``cache_evictions_total``
``allowlist_refusals_total``           URLs and redirects outside
                                       ``ReproxyAllowTargets``
=====================================  ==========================================

**Several processes** (gunicorn workers): set ``PROMETHEUS_MULTIPROC_DIR`` to
an empty directory before the server starts; ``prometheus_client`` then
keeps each worker's values in files there, and :func:`multiprocess_registry`
adds them up for a scrape.  The gauges use ``multiprocess_mode="livesum"``
(the sum over live workers), which needs the server to report dead workers:
in ``gunicorn.conf.py``::

    from wsgi_reproxy.prometheus import mark_process_dead

    def child_exit(server, worker):
        mark_process_dead(worker.pid)

``wsgi-reproxy serve --metrics-bind ADDR`` does all of this itself and serves
``/metrics`` from the gunicorn master (:mod:`wsgi_reproxy.run.metricsbind`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)

from .fetch.metrics import Outcome
from .fetch.pool import default_pool
from .fetch.poolstats import pool_connections

__all__ = [
    "PrometheusMetrics",
    "classify_failure",
    "mark_process_dead",
    "multiprocess_registry",
]

#: Body sizes: 1 KiB to 4 GiB, by factors of 16 (then 4).
BYTES_BUCKETS = tuple(float(1024 * 16**i) for i in range(6)) + (float(4 << 30),)
#: Seconds: loopback storage answers in a millisecond, a slow client may
#: hold a large body for minutes.
TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)

#: Pool gauges are sampled after a reproxy, at most this often (seconds) per
#: process: a sample costs about 6 us per host, a reproxy's events about 10.
POOL_REFRESH = 1.0

# (substring of UpstreamError.reason, label): a handful of labels, whatever
# the reason text says.
_REASONS = (
    ("outside ReproxyAllowTargets", "refused"),
    ("timeout", "timeout"),
    ("no free connection", "timeout"),
    ("cannot connect", "connect"),
    ("redirect", "redirect"),
    ("size", "size"),
    ("status ", "status"),
    ("connection broken", "broken"),
)


def classify_failure(reason: str) -> str:
    """A failed try's reason as a low-cardinality label."""
    for text, label in _REASONS:
        if text in reason:
            return label
    return "other"


class PrometheusMetrics:
    """A :class:`~wsgi_reproxy.fetch.metrics.Metrics` on ``prometheus_client``.

    Create one per process and registry (a second one on the same registry
    raises ``ValueError: Duplicated timeseries``).

    :param registry: where the metrics are registered.
    :param namespace: the metric name prefix.
    :param pool: returns the pool whose connections are reported; default
        the process-wide one.  Pass ``lambda: my_pool`` when you give the
        middleware ``pool=my_pool``.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry = REGISTRY,
        namespace: str = "wsgi_reproxy",
        pool: Callable[[], urllib3.PoolManager] = default_pool,
    ) -> None:
        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(
                name, doc, labels, namespace=namespace, registry=registry,
                multiprocess_mode="livesum",
            )  # fmt: skip

        self.reproxies = counter("reproxies", "Reproxies by outcome", ["outcome"])
        self.tries = counter("tries", "Target tries by storage host", ["host"])
        self.failures = counter(
            "try_failures", "Failed target tries by host and reason", ["host", "reason"]
        )
        self.refusals = counter(
            "allowlist_refusals", "URLs refused by ReproxyAllowTargets"
        )
        self.hits = counter("cache_hits", "X-Reproxy-Cache-For hits")
        self.misses = counter("cache_misses", "X-Reproxy-Cache-For misses")
        self.evictions = counter("cache_evictions", "X-Reproxy-Cache-For evictions")
        self.sent = Histogram(
            "response_bytes", "Body bytes sent per reproxy",
            namespace=namespace, registry=registry, buckets=BYTES_BUCKETS,
        )  # fmt: skip
        self.ttfb = Histogram(
            "ttfb_seconds", "Seconds from the first try to the target's head",
            namespace=namespace, registry=registry, buckets=TTFB_BUCKETS,
        )  # fmt: skip
        self.duration = Histogram(
            "duration_seconds", "Seconds from the first try to the body's end",
            namespace=namespace, registry=registry, buckets=DURATION_BUCKETS,
        )  # fmt: skip
        self.in_flight = gauge("transfers_in_flight", "Bodies streaming now")
        self.connections = gauge(
            "pool_connections", "Connections to targets by host", ["host", "state"]
        )
        self._pool = pool
        self._pool_hosts: set[str] = set()
        self._pool_children: dict[str, tuple[Any, Any]] = {}
        self._tries: dict[str, Any] = {}
        self._pool_refreshed = float("-inf")
        # Label children looked up once: labels() costs a lock and a dict.
        self._outcomes = {
            outcome: self.reproxies.labels(outcome)
            for outcome in ("served", "failover", "failed", "aborted", "client-gone")
        }

    # -- the Metrics protocol -------------------------------------------------

    def reproxy_finished(
        self,
        outcome: Outcome,
        status: int,
        bytes: int,
        ttfb: float | None,
        duration: float,
    ) -> None:
        self._outcomes[outcome].inc()
        self.sent.observe(bytes)
        if ttfb is not None:
            self.ttfb.observe(ttfb)
        self.duration.observe(duration)
        now = time.monotonic()
        if now - self._pool_refreshed >= POOL_REFRESH:
            self._pool_refreshed = now
            self.refresh_pool()

    def _tried(self, host: str) -> None:
        child = self._tries.get(host)
        if child is None:
            child = self._tries[host] = self.tries.labels(host)
        child.inc()

    def try_succeeded(self, host: str) -> None:
        self._tried(host)

    def try_failed(self, host: str, reason: str) -> None:
        self._tried(host)
        self.failures.labels(host, classify_failure(reason)).inc()

    def allowlist_refused(self, host: str) -> None:
        # No host label: the URL is the app's (or an attacker's) choice.
        self.refusals.inc()

    def cache_hit(self) -> None:
        self.hits.inc()

    def cache_miss(self) -> None:
        self.misses.inc()

    def cache_eviction(self) -> None:
        self.evictions.inc()

    def transfer_started(self) -> None:
        self.in_flight.inc()

    def transfer_ended(self) -> None:
        self.in_flight.dec()

    # -- pool gauges ------------------------------------------------------------

    def refresh_pool(self) -> None:
        """Set the ``pool_connections`` gauges from the pool now (hosts the
        pool dropped go to 0).  Called after reproxies, at most once per
        :data:`POOL_REFRESH` seconds."""
        stats = pool_connections(self._pool())
        for host in self._pool_hosts - stats.keys():
            stats[host] = (0, 0)
        children = self._pool_children
        for host, (open_, idle) in stats.items():
            pair = children.get(host)
            if pair is None:
                pair = children[host] = (
                    self.connections.labels(host, "open"),
                    self.connections.labels(host, "idle"),
                )
            pair[0].set(open_)
            pair[1].set(idle)
        self._pool_hosts = {h for h, counts in stats.items() if counts != (0, 0)}


def multiprocess_registry() -> CollectorRegistry:
    """A registry adding up every process's values for one scrape.

    :raises ValueError: when ``PROMETHEUS_MULTIPROC_DIR`` is not set.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        raise ValueError("PROMETHEUS_MULTIPROC_DIR is not set")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def mark_process_dead(pid: int) -> None:
    """Drop the ``livesum`` gauge values of the worker *pid* (gunicorn's
    ``child_exit`` hook); a no-op outside multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
