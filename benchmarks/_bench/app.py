"""The benchmark's backend: one tiny WSGI app behind every reproxy layer.

It answers ``GET /ok/NAME`` and ``GET /failover/NAME`` with an empty body
and two headers, so perlbal, nginx and wsgi_reproxy all get the same
instruction in their own dialect:

- ``X-Reproxy-Url`` (perlbal, wsgi_reproxy): the storage node's URL, or for
  ``/failover/`` a dead loopback port first and the storage node second;
- ``X-Accel-Redirect`` (nginx): ``/_reproxy/UPSTREAM/NAME``; nginx's
  internal location takes the upstream name and path from that variable
  and ``proxy_pass``\\es there. ``storage`` is an upstream block with the
  storage node; ``storage_failover`` lists the dead port first and the
  storage node as ``backup``, with ``max_fails=0`` so nginx retries the dead
  one on every request as perlbal and wsgi_reproxy do.

Configured through the environment (set by the driver):
``BENCH_STORAGE_PORT`` and ``BENCH_DEAD_PORT``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]

STORAGE = f"http://127.0.0.1:{os.environ.get('BENCH_STORAGE_PORT', '0')}"
DEAD = f"http://127.0.0.1:{os.environ.get('BENCH_DEAD_PORT', '0')}"


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Answer every known path with reproxy headers and no body."""
    path = environ.get("PATH_INFO", "")
    kind, _, name = path.lstrip("/").partition("/")
    if kind == "ok" and name:
        urls = f"{STORAGE}/{name}"
        accel = f"/_reproxy/storage/{name}"
    elif kind == "failover" and name:
        urls = f"{DEAD}/{name} {STORAGE}/{name}"
        accel = f"/_reproxy/storage_failover/{name}"
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", "0"),
            ("X-Reproxy-Url", urls),
            ("X-Accel-Redirect", accel),
        ],
    )
    return [b""]
