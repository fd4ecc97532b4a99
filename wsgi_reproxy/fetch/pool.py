"""The process-wide urllib3 pool, created lazily and again after a fork.

Every :class:`~wsgi_reproxy.fetch.fetcher.Fetcher` built without a pool shares
this one, so keep-alive connections to the targets are reused across
requests and threads::

    pool = default_pool()   # the same object until the process forks
"""

from __future__ import annotations

import os
import threading
from typing import Any

import urllib3
from urllib3._collections import RecentlyUsedContainer
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .idle import has_pending

#: Distinct target hosts kept in the process-wide pool (urllib3's LRU of
#: per-host pools); storage clusters rarely have more nodes than this.
DEFAULT_NUM_POOLS = 32

#: Connections per target host and process, busy and idle together (issue
#: 12): with N slow clients there are N storage connections, so the bound
#: protects the storage node.  A request past it waits up to the connect
#: timeout for a free one, then the client gets ``503`` with ``Retry-After``.
#: 4,096 holds a gevent worker's share of 10,000 slow downloads on one node;
#: ``serve --max-storage-connections N`` (or ``WSGI_REPROXY_MAX_CONNECTIONS``
#: in the environment) sets it.
DEFAULT_MAXSIZE = 4096

#: The environment variable that sets the bound for the process-wide pool.
MAX_CONNECTIONS_ENV = "WSGI_REPROXY_MAX_CONNECTIONS"


def max_connections() -> int:
    """The per-host bound: ``WSGI_REPROXY_MAX_CONNECTIONS`` or the default.

    :raise ValueError: for a value that is not a positive whole number.
    """
    text = os.environ.get(MAX_CONNECTIONS_ENV, "").strip()
    if not text:
        return DEFAULT_MAXSIZE
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(
            f"{MAX_CONNECTIONS_ENV} must be a positive number, not {text!r}"
        )
    return int(text)


class _HTTPConnection(HTTPConnection):
    @property
    def is_connected(self) -> bool:
        # urllib3's check at reuse (_get_conn), one native poll(0) (.idle).
        return self.sock is not None and not has_pending(self.sock)


class _HTTPSConnection(HTTPSConnection):
    @property
    def is_connected(self) -> bool:
        return self.sock is not None and not has_pending(self.sock)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class OriginPools(urllib3.PoolManager):
    """A :class:`urllib3.PoolManager` that finds an origin's pool by a dict
    lookup, and closes the pools its LRU evicts.

    ``PoolManager.connection_from_host`` builds and normalises a ``PoolKey``
    on every call (a tenth of a small reproxy's CPU, issue 16).  Here the pool
    of each ``(scheme, host, port)`` is remembered; the manager's LRU stays
    the one authority on which pools exist: an evicted pool is forgotten and
    closed (urllib3 2 no longer closes them), so the per-host bound holds.
    Its pools check an idle connection before reuse with one native
    ``poll(0)`` (:mod:`.idle`), not gevent's patched poll.
    """

    def __init__(self, num_pools: int, **connection_pool_kw: Any) -> None:
        super().__init__(num_pools=num_pools, **connection_pool_kw)
        self._by_origin: dict[tuple[str, str, int | None], HTTPConnectionPool] = {}
        self.pools = RecentlyUsedContainer(num_pools, dispose_func=self._evicted)
        self.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def _evicted(self, pool: HTTPConnectionPool) -> None:
        for origin, known in list(self._by_origin.items()):
            if known is pool:
                self._by_origin.pop(origin, None)
        pool.close()

    def connection_from_host(
        self,
        host: str | None,
        port: int | None = None,
        scheme: str | None = "http",
        pool_kwargs: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        if pool_kwargs is not None or host is None or scheme is None:
            return super().connection_from_host(host, port, scheme, pool_kwargs)
        origin = (scheme, host, port)
        pool = self._by_origin.get(origin)
        if pool is None or pool.pool is None:  # None: closed meanwhile
            pool = super().connection_from_host(host, port, scheme)
            self._by_origin[origin] = pool
        return pool


_pool_lock = threading.Lock()
_pool: urllib3.PoolManager | None = None
#: This process's id, kept current by the fork hook below where there is
#: one (os.getpid() is a system call per request otherwise: issue 16).
_pid: int | None = os.getpid() if hasattr(os, "register_at_fork") else None
_pool_pid: int | None = None


def default_pool() -> urllib3.PoolManager:
    """Return the process-wide :class:`urllib3.PoolManager`, creating it lazily.

    A new pool is created when the process id changed since the last call:
    gunicorn's ``--preload`` forks workers from a master that may already
    hold one, and a socket shared between processes is unusable (SPEC §5).
    """
    global _pool, _pool_pid
    pid = _pid if _pid is not None else os.getpid()
    pool = _pool
    if pool is not None and _pool_pid == pid:
        return pool
    with _pool_lock:
        if _pool is None or _pool_pid != pid:
            # The parent's pool is not closed here: closing only drops this
            # process's copies of the descriptors, which the GC does anyway.
            _pool = OriginPools(
                num_pools=DEFAULT_NUM_POOLS, maxsize=max_connections(), block=True
            )
            _pool_pid = pid
        return _pool


def _reset_lock_after_fork() -> None:
    # A thread of the parent may have held the lock at fork time; the child
    # has no such thread, so it needs a fresh lock (the pid check does the rest).
    global _pool_lock, _pid
    _pool_lock = threading.Lock()
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)
