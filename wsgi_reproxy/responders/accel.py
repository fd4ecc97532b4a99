"""nginx's ``X-Accel-Redirect``: which ``ReproxyAccelRedirect`` takes a path.

An app written for nginx answers ``X-Accel-Redirect: /protected/a%20b.pdf``
and nginx serves it from ``location /protected/ { internal; alias DIR/; }``
or ``{ internal; proxy_pass URL; }``.  ``ReproxyAccelRedirect PREFIX TARGET``
is that location in one line; these pure functions map a header value to a
file or a URL the way nginx does::

    found = find_redirect("/protected/a%20b.pdf", settings.accel_redirects)
    if found is not None:
        redirect, rest = found
        target = file_for(redirect, rest) if not redirect.is_url else (
            url_for(redirect, "/protected/a%20b.pdf", rest, query))

What nginx does and we do alike (``ngx_http_parse_unsafe_uri``): the value is
split at the first ``?``; a path holding a ``.`` or ``..`` segment, before or
after percent-decoding, or a NUL, is refused (nginx answers 404).  A
directory target sees the path percent-decoded once, as nginx matches and
maps its decoded URI (django-sendfile2's nginx backend quotes the path for
this reason).  A URL target gets the rest of the path exactly as the app
wrote it, still encoded, plus the query string, as ``proxy_pass`` appends the
arguments: a presigned URL's signature covers those bytes, and decoding and
re-encoding them could change them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from ..config.dialects import AccelRedirect
from .confine import Refusal

#: nginx's default ``charset_types``: the types ``X-Accel-Charset`` labels.
CHARSET_TYPES = frozenset(
    {"text/html", "text/xml", "text/plain", "text/vnd.wap.wml",
     "application/javascript", "application/rss+xml"}
)  # fmt: skip

#: A charset name is a token (RFC 9110 §8.3.2).
_CHARSET = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def find_redirect(
    path: str, redirects: Sequence[AccelRedirect]
) -> tuple[AccelRedirect, str] | None:
    """The redirect whose prefix is the longest start of *path*, and the rest.

    Like nginx's prefix locations, the longest prefix wins (the last line of
    equal ones).  Unlike nginx, a prefix without a trailing ``/`` takes only
    whole segments: ``/protected`` takes ``/protected/a`` but not
    ``/protectedfoo``, which with an ``alias`` would map outside its
    directory (a classic nginx misconfiguration).
    """
    best: tuple[AccelRedirect, str] | None = None
    for redirect in redirects:
        prefix = redirect.prefix
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        if rest and not prefix.endswith("/") and not rest.startswith("/"):
            continue
        if best is None or len(prefix) >= len(best[0].prefix):
            best = (redirect, rest)
    return best


def unsafe(path: str) -> str | None:
    """Why nginx would refuse *path* (a 404), else ``None``."""
    for form in (path, unquote(path, errors="surrogateescape")):
        if "\x00" in form:
            return "NUL in path"
        if any(segment in (".", "..") for segment in form.split("/")):
            return "'.' or '..' segment in path"
    return None


def file_for(redirect: AccelRedirect, rest: str) -> str | Refusal:
    """The file below the redirect's directory for the path's *rest*.

    Percent-decoded once (UTF-8, undecodable bytes kept as the file system
    encoding does); the caller still confines it below the directory with
    every symlink resolved (:func:`.confine.resolve_file`).
    """
    decoded = unquote(rest, errors="surrogateescape")
    if not decoded.strip("/"):
        return Refusal("no file named below the prefix")
    return os.path.join(redirect.target, decoded.lstrip("/"))


def url_for(redirect: AccelRedirect, path: str, rest: str, query: str) -> str:
    """The target URL for an ``X-Accel-Redirect`` of *path* (``?`` *query*).

    As ``proxy_pass``: a target with a path replaces the prefix with it (one
    ``/`` between the two); a target that is only ``scheme://host[:port]``
    gets the whole path, prefix included.  The query string is appended
    unchanged.
    """
    target = redirect.target
    if urlsplit(target).path == "":
        url = target + path
    elif rest:
        url = target.rstrip("/") + "/" + rest.lstrip("/")
    else:
        url = target
    return f"{url}?{query}" if query else url


def with_charset(content_type: str, charset: str) -> str:
    """*content_type* with its charset set to *charset*, as nginx applies
    ``X-Accel-Charset`` to the types in :data:`CHARSET_TYPES`.

    ``off``, ``None`` (django-downloadview's value for a type without a
    charset) and anything that is not a token leave the type unchanged.
    """
    charset = charset.strip()
    if not _CHARSET.fullmatch(charset) or charset.lower() in ("off", "none"):
        return content_type
    mime, _, params = content_type.partition(";")
    if mime.strip().lower() not in CHARSET_TYPES:
        return content_type
    kept = [
        p.strip()
        for p in params.split(";")
        if p.strip() and not p.strip().lower().startswith("charset=")
    ]
    return "; ".join([mime.strip(), *kept, f"charset={charset}"])
