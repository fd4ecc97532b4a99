"""``X-Reproxy-Cache-For``: remember a reproxy answer so later requests skip the app.

perlbal's extension (SPEC §4 item 9).  An application answering

.. code-block:: text

    X-Reproxy-Url: http://store-1:7500/dev/42.fid http://store-2:7500/dev/42.fid
    X-Reproxy-Cache-For: 300; Content-Type Last-Modified

asks the proxy to remember, for 300 seconds and for this Host and path (query
string included), the URL list and the app's ``Content-Type`` and
``Last-Modified`` headers.  A later ``GET`` or ``HEAD`` for the same key is
then reproxied **without calling the application at all**.

.. warning::

   A cache hit skips the application, and with it every permission check the
   application makes.  Only send ``X-Reproxy-Cache-For`` for objects that
   anyone who can reach the URL may read.

Usage (what the middleware does)::

    cache = ReproxyCache(max_entries=10_000, max_bytes=8 * 1024 * 1024)

    entry = cache.lookup(environ, settings)          # before calling the app
    if entry is not None:
        app_headers = entry.app_headers()            # as if the app answered
    ...
    cache.remember(environ, settings, app_headers)   # after a good reproxy

The cache is per process (perlbal's was per service), thread-safe, and a
least-recently-used mapping bounded both by entry count and by approximate
size in bytes.  Only URL lists are remembered: as in perlbal, an
``X-Reproxy-File`` answer always asks the application.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..config.settings import Settings
from ..fetch.metrics import NO_METRICS, Metrics
from .cachefor import CacheKey, cache_key, parse_cache_for
from .headers import header_values

logger = logging.getLogger(__name__)

#: Methods a cache entry may answer (SPEC §4 item 9, issue 5): a ``POST``
#: always reaches the application.
CACHEABLE_METHODS = frozenset({"GET", "HEAD"})

#: environ key holding the request's cache key as :meth:`ReproxyCache.lookup`
#: saw it, before the app ran (``None``: the request may not be cached).  An
#: inner layer may rewrite ``PATH_INFO`` (PEP 3333 allows it); the answer is
#: still remembered for the request as it reached the middleware (issue 11).
KEY_ENVIRON = "wsgi_reproxy.cache_key"

#: Default bounds.  perlbal measured about 1.25 KB of RAM per entry; 10 000
#: entries of a few URLs each stay far below the byte bound.
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

# Headers whose value is remembered with the URLs even when the app did not
# list them: without it a cache hit would skip perlbal's size check.
_ALWAYS_KEPT = frozenset({"x-reproxy-expected-size"})
# The URL list is stored on its own; the other control headers mean nothing
# on a hit.
_NEVER_KEPT = frozenset({"x-reproxy-url", "x-reproxy-cache-for", "x-reproxy-file"})


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One remembered reproxy answer.

    :param urls: the target URLs, in the order the app listed them.
    :param headers: the remembered ``(name, value)`` pairs, exactly as the app
        sent them (name case and value bytes unchanged).
    :param expires: the clock value after which the entry is dead.
    :param size: its approximate size in bytes (key, URLs and headers).
    """

    urls: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    expires: float
    size: int

    def app_headers(self) -> list[tuple[str, str]]:
        """The response headers to act on, as if the app had answered again.

        The remembered headers followed by one ``X-Reproxy-Url`` with the URL
        list, so the middleware runs its ordinary reproxy path on a hit.
        """
        return [*self.headers, ("X-Reproxy-Url", " ".join(self.urls))]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A consistent snapshot of the cache counters.

    ``misses`` counts every lookup that found no live entry, including
    requests whose answer never asks to be cached; ``expired`` those of them
    that found a dead one.
    """

    hits: int
    misses: int
    evictions: int
    expired: int
    entries: int
    bytes: int


def _size(
    key: CacheKey, urls: Iterable[str], headers: Iterable[tuple[str, str]]
) -> int:
    # Approximate: the string payload only, not Python's object overhead.
    return (
        len(key[0])
        + len(key[1])
        + sum(len(u) for u in urls)
        + sum(len(n) + len(v) for n, v in headers)
    )


class ReproxyCache:
    """A thread-safe LRU mapping of :data:`CacheKey` to :class:`CacheEntry`.

    .. warning::

       Hits skip the application and so its permission checks; see the
       module documentation.

    :param max_entries: the most entries kept; the least recently used one
        is evicted to make room.
    :param max_bytes: the most approximate bytes kept (key, URLs and header
        names and values); an entry larger than this is not stored.
    :param clock: a monotonic clock in seconds; tests inject their own.
    :param metrics: told of every hit, miss and eviction; the middleware
        gives a cache built with the default its own ``metrics=``.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        *,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self.metrics = metrics
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expired = 0

    def get(self, key: CacheKey) -> CacheEntry | None:
        """Return the live entry for *key* (and mark it recently used).

        An expired entry is removed and counts as a miss.
        """
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now >= entry.expires:
                self._drop(key, entry)
                self._expired += 1
                entry = None
            if entry is None:
                self._misses += 1
            else:
                self._entries.move_to_end(key)
                self._hits += 1
        # Outside the lock: a metrics call may take its own.
        (self.metrics.cache_miss if entry is None else self.metrics.cache_hit)()
        return entry

    def put(
        self,
        key: CacheKey,
        urls: Iterable[str],
        headers: Iterable[tuple[str, str]],
        seconds: float,
    ) -> CacheEntry | None:
        """Remember *urls* and *headers* for *key* during *seconds*.

        Replaces any entry for *key*, then evicts least recently used entries
        until both bounds hold.  Returns the stored entry, or ``None`` when
        nothing was stored (no URL, ``seconds <= 0``, or an entry bigger than
        ``max_bytes``).
        """
        urls = tuple(urls)
        headers = tuple(headers)
        size = _size(key, urls, headers)
        if not urls or seconds <= 0 or size > self.max_bytes:
            return None
        entry = CacheEntry(urls, headers, self._clock() + seconds, size)
        evicted = 0
        with self._lock:
            old = self._entries.get(key)
            if old is not None:
                self._drop(key, old)
            self._entries[key] = entry
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                lru_key, lru = next(iter(self._entries.items()))
                self._drop(lru_key, lru)
                evicted += 1
            self._evictions += evicted
        for _ in range(evicted):
            self.metrics.cache_eviction()
        return entry

    def _drop(self, key: CacheKey, entry: CacheEntry) -> None:
        # Caller holds the lock.
        del self._entries[key]
        self._bytes -= entry.size

    def clear(self) -> None:
        """Forget every entry (the counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    # No __len__ on purpose: an empty cache must stay truthy, since callers
    # write ``cache or None``.  Use ``stats.entries``.

    @property
    def stats(self) -> CacheStats:
        """Hits, misses, evictions, expirations, entries and bytes, read
        together under the lock."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                expired=self._expired,
                entries=len(self._entries),
                bytes=self._bytes,
            )

    # -- the two calls the middleware makes ---------------------------------

    def lookup(
        self, environ: MutableMapping[str, Any], settings: Settings
    ) -> CacheEntry | None:
        """The entry answering this request, or ``None`` to call the app.

        Only ``GET`` and ``HEAD`` requests for which reproxying is on are
        looked up; other requests are not even counted as misses.  The key
        is saved in ``environ[KEY_ENVIRON]`` for :meth:`remember`.
        """
        if not settings.allow_reproxy:
            return None
        if environ.get("REQUEST_METHOD", "GET").upper() not in CACHEABLE_METHODS:
            environ[KEY_ENVIRON] = None
            return None
        key = environ[KEY_ENVIRON] = cache_key(environ)
        return self.get(key)

    def remember(
        self,
        environ: Mapping[str, Any],
        settings: Settings,
        app_headers: Iterable[tuple[str, str]],
        urls: Iterable[str] | None = None,
    ) -> CacheEntry | None:
        """Store the app's answer if it carries ``X-Reproxy-Cache-For``.

        A value that cannot be parsed is logged at WARNING and ignored.

        :param environ: the request; its key is the one :meth:`lookup` saved
            before the app ran, else computed now.
        :param settings: its resolved settings; nothing is stored when
            reproxying is off or the method is not ``GET``/``HEAD``.
        :param app_headers: the app's response headers.
        :param urls: the validated URL list; by default the whitespace-split
            values of every ``X-Reproxy-Url`` header, in order.
        :returns: the stored entry, or ``None`` when nothing was stored.
        """
        if not settings.allow_reproxy:
            return None
        if KEY_ENVIRON in environ:
            key: CacheKey | None = environ[KEY_ENVIRON]
        elif environ.get("REQUEST_METHOD", "GET").upper() in CACHEABLE_METHODS:
            key = cache_key(environ)
        else:
            key = None
        if key is None:
            return None
        app_headers = list(app_headers)
        values = header_values(app_headers, "X-Reproxy-Cache-For")
        if not values:
            return None
        value = values[0]
        cache_for = parse_cache_for(value)
        if cache_for is None:
            logger.warning("ignoring bad X-Reproxy-Cache-For %r", value)
            return None
        if urls is None:
            urls = [
                u
                for v in header_values(app_headers, "X-Reproxy-Url")
                for u in v.split()
            ]
        wanted = {n.lower() for n in cache_for.headers} - _NEVER_KEPT
        wanted.update(_ALWAYS_KEPT)
        kept = [(n, v) for n, v in app_headers if n.lower() in wanted]
        return self.put(key, urls, kept, cache_for.seconds)
