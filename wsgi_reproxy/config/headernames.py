"""Header-name rules read at load time and applied per response.

The parser checks ``PreserveHeaders`` and ``X-Reproxy-Cache-For`` names with
them; the responders decide with the same rules what the client gets::

    if not HEADER_NAME.fullmatch(name): ...
    is_preservable("Content-Length")   # False: the body's framing is the target's
"""

from __future__ import annotations

import re

from werkzeug.http import is_hop_by_hop_header

#: A header name is a token (RFC 9110 §5.6.2); use with ``fullmatch``.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: Never taken from the app by ``PreserveHeaders`` (SPEC §4.5): the body is
#: the target's, so its framing headers must be the target's too.
NEVER_PRESERVED = frozenset({"content-length", "content-range"})


def is_reproxy_header(name: str) -> bool:
    """``X-Reproxy-*`` headers never reach the client (SPEC §4.5, §4.8)."""
    return name.lower().startswith("x-reproxy-")


def is_preservable(name: str) -> bool:
    """Whether ``PreserveHeaders`` may take header *name* from the app: never
    the body's framing, a hop-by-hop header or an ``X-Reproxy-*`` one."""
    return not (
        name.lower() in NEVER_PRESERVED
        or is_hop_by_hop_header(name)
        or is_reproxy_header(name)
    )
