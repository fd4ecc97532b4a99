"""Connections per target host, read from a urllib3 pool for metrics.

The one place that looks inside urllib3's pools (``PoolManager.pools``, each
``HTTPConnectionPool.pool`` queue); when the pool changes, only
:func:`pool_connections` changes::

    for host, (open_, idle) in pool_connections(default_pool()).items():
        ...
"""

from __future__ import annotations

import urllib3


def pool_connections(manager: urllib3.PoolManager) -> dict[str, tuple[int, int]]:
    """``{"host:port": (open, idle)}`` for every host pool *manager* holds.

    *idle* counts connected sockets waiting in the pool for reuse; *open* adds
    the connections checked out right now (a pool slot taken).  A
    non-blocking pool's overflow connections (opened past ``maxsize`` and
    dropped after use) are not counted.  Read without locks: a snapshot good
    for a gauge, not for accounting.
    """
    stats: dict[str, tuple[int, int]] = {}
    container = manager.pools
    with container.lock:
        pools = list(container._container.items())
    for key, host_pool in pools:
        queue = getattr(host_pool, "pool", None)
        if queue is None:  # closed
            continue
        waiting = list(queue.queue)
        idle = sum(1 for conn in waiting if conn is not None and conn.sock is not None)
        in_use = max(0, queue.maxsize - len(waiting))
        host = f"{key.key_host}:{key.key_port}" if key.key_port else key.key_host
        stats[host] = (in_use + idle, idle)
    return stats
