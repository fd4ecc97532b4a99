"""Header rules: what the target is sent and what the client gets back.

Pure functions over ``(name, value)`` lists, used by the middleware::

    headers = client_headers(upstream, app_headers, settings)
    start_response(status_line(upstream.status, upstream.reason), headers)
"""

from __future__ import annotations

import functools
import http
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from werkzeug.http import is_hop_by_hop_header

from ..config.headernames import is_preservable, is_reproxy_header
from ..config.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from ..fetch.fetcher import Upstream

Headers = list[tuple[str, str]]

#: Request headers never forwarded even when listed: they describe the
#: client's connection, not the object (RFC 9110 §7.6.1).
NEVER_FORWARDED = frozenset(
    {"host", "content-length", "connection", "keep-alive", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip

#: Target response headers that never reach the client (SPEC §3,
#: ``ReproxyKeepAppHeaders``): the storage node's software and version, and
#: cookies a node would set for the app's domain.  The app's own values of
#: these pass when kept (``Set-Cookie`` is kept by default).
NEVER_FROM_TARGET = frozenset({"server", "x-powered-by", "set-cookie"})

#: The header marking a request the middleware sends to a target (SPEC §4.10).
#: A request arriving with it is never reproxied, so an ``X-Reproxy-Url``
#: naming this server stops at depth 1 with a 502 instead of looping.
DEPTH_HEADER = "X-Reproxy-Depth"
#: The same header as a WSGI environ key.
DEPTH_ENVIRON_KEY = "HTTP_X_REPROXY_DEPTH"

_OCTET_STREAM = "application/octet-stream"


def expected_size(app_headers: Iterable[tuple[str, str]]) -> int | str | None:
    """The app's ``X-Reproxy-Expected-Size``: a size, ``None`` when it sent
    none, or the reason the value is unusable (the caller fails closed)."""
    values = header_values(app_headers, "X-Reproxy-Expected-Size")
    if not values:
        return None
    text = values[0].strip()
    if text.isascii() and text.isdigit():  # "\u00b2".isdigit() is true too
        return int(text)
    return f"bad X-Reproxy-Expected-Size {text!r}"


def header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    """Every value of header *name* (any case), in order."""
    name = name.lower()
    size = len(name)
    # The length first: most names differ in it, and need no lower() then.
    return [v for k, v in headers if len(k) == size and k.lower() == name]


@functools.lru_cache(maxsize=256)
def _forwardable(names: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """``(name, lower-case name, environ key)`` of each of *names* that is
    not hop-by-hop by its nature: computed once per ``ReproxyForwardHeaders``
    list, not per request (issue 16's profile: 28 lower() a request)."""
    out = []
    for name in names:
        lower = name.lower()
        if lower in NEVER_FORWARDED or is_hop_by_hop_header(lower):
            continue
        key = "CONTENT_TYPE" if lower == "content-type" else "HTTP_" + name.upper()
        out.append((name, lower, key.replace("-", "_")))
    return tuple(out)


def forwarded_headers(environ: WSGIEnvironment, names: Sequence[str]) -> dict[str, str]:
    """The client request headers in *names* that the target should see.

    Never a hop-by-hop header: neither those of :data:`NEVER_FORWARDED` or
    werkzeug's list (``Proxy-Authorization``...) nor one the client named in
    its own ``Connection`` header (RFC 9110 §7.6.1:
    "Connection: close, X-Token" makes ``X-Token`` this hop's alone).
    """
    connection = environ.get("HTTP_CONNECTION")
    hop = (
        {token.strip().lower() for token in connection.split(",")} if connection else ()
    )
    out: dict[str, str] = {}
    for name, lower, key in _forwardable(tuple(names)):
        value = environ.get(key)
        if value is not None and lower not in hop:
            out[name] = value
    return out


@functools.lru_cache(maxsize=256)
def _kept(preserve: tuple[str, ...], keep: tuple[str, ...]) -> frozenset[str]:
    # Settings are few and frozen: lower-case and filter each list once, not
    # per response (issue 16's profile: 14 names a request).
    return frozenset(h.lower() for h in (*preserve, *keep) if is_preservable(h))


@functools.lru_cache(maxsize=1024)
def _from_target(name: str) -> str | None:
    """*name* in lower case when the rules that depend on the name alone let
    a target's header reach the client, else ``None``: hop-by-hop, every
    ``X-Reproxy-*`` and :data:`NEVER_FROM_TARGET` never do.  Memoised:
    targets send the same few names (issue 16's profile)."""
    lower = name.lower()
    if (
        is_hop_by_hop_header(lower)
        or is_reproxy_header(lower)
        or lower in NEVER_FROM_TARGET
    ):
        return None
    return lower


def client_headers(
    upstream: Upstream, app_headers: Headers, settings: Settings
) -> Headers:
    """The target's headers as the client gets them (SPEC §4.5).

    Hop-by-hop headers go (PEP 3333), including those the target named in
    its ``Connection`` header (RFC 9110 §7.6.1), every ``X-Reproxy-*``, and
    the target's ``Server``, ``X-Powered-By`` and ``Set-Cookie``
    (:data:`NEVER_FROM_TARGET`).  Then each ``PreserveHeaders`` or
    ``ReproxyKeepAppHeaders`` header the app sent replaces the target's,
    with all its values exactly as the app wrote them.
    """
    listed = {
        token.strip().lower()
        for value in header_values(upstream.headers, "Connection")
        for token in value.split(",")
    }
    keep = _kept(settings.preserve_headers, settings.keep_app_headers)
    preserved = [(name, value) for name, value in app_headers if name.lower() in keep]
    if preserved:
        listed |= {name.lower() for name, _ in preserved}  # replaced: the app's
    headers = []
    for name, value in upstream.headers:
        lower = _from_target(name)
        if lower is not None and lower not in listed:
            headers.append((name, value))
    headers += preserved
    if upstream.status not in (204, 304) and not header_values(headers, "Content-Type"):
        # PEP 3333 servers and validators want a Content-Type; RFC 9110 §8.3
        # lets a recipient assume octet-stream.  The app's own type, when it
        # sent one, is the better guess.
        app_type = header_values(app_headers, "Content-Type")
        headers.append(("Content-Type", app_type[0] if app_type else _OCTET_STREAM))
    return headers


def status_line(status: int, reason: str) -> str:
    """``"206 Partial Content"``: the target's reason phrase when printable,
    else the standard one (a WSGI status line needs some phrase)."""
    if not reason or not reason.isprintable():
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    return f"{status} {reason}"
