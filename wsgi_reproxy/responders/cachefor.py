"""The ``X-Reproxy-Cache-For`` header and the key a cached answer is stored under.

Pure functions used by :mod:`wsgi_reproxy.responders.cache`::

    parse_cache_for("300; Content-Type")   # CacheFor(300.0, ("Content-Type",))
    cache_key(environ)                     # ("example.com", "/f/1?x=2")
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.headernames import HEADER_NAME

# perlbal splits the list on whitespace; commas are accepted too, as in every
# other HTTP header list.
_LIST_SEP = re.compile(r"[\s,]+")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # ASCII only, unlike \d

#: ``(host, path)``: the cache key.
CacheKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class CacheFor:
    """A parsed ``X-Reproxy-Cache-For`` value.

    :param seconds: how long the answer may be reused, always > 0.
    :param headers: the header names to remember, as written.
    """

    seconds: float
    headers: tuple[str, ...]


def parse_cache_for(value: str) -> CacheFor | None:
    """Parse ``SECONDS[; Header1 Header2 ...]``.

    Returns ``None`` for a value that cannot be used (the caller logs it):
    no or a non-numeric, negative, zero or non-finite number of seconds (for
    perlbal ``0`` meant "never reuse"), or a header name that is not an
    RFC 9110 token.

    :param value: the header value as the application sent it.
    """
    seconds_text, _, names_text = value.partition(";")
    seconds_text = seconds_text.strip()
    if not _SECONDS.fullmatch(seconds_text):
        return None
    seconds = float(seconds_text)
    if seconds <= 0 or not math.isfinite(seconds):
        return None
    names = tuple(n for n in _LIST_SEP.split(names_text.strip()) if n)
    if not all(HEADER_NAME.fullmatch(n) for n in names):
        return None
    return CacheFor(seconds, names)


def cache_key(environ: Mapping[str, Any]) -> CacheKey:
    """Build the cache key of a request: ``(host, path?query)``.

    The host is ``HTTP_HOST`` (else ``SERVER_NAME``, with ``SERVER_PORT``
    when it is not the scheme's default) lower-cased; the path is
    ``SCRIPT_NAME + PATH_INFO`` as the server decoded it (the same path the
    config's ``<Location>`` sections match), plus ``?QUERY_STRING`` when there
    is one.  perlbal keyed on ``Host|request-URI`` the same way.
    """
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME", "")
        port = str(environ.get("SERVER_PORT", ""))
        default = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
        if port and port != default:
            host = f"{host}:{port}"
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if query:
        path = f"{path}?{query}"
    return (str(host).lower(), path)
