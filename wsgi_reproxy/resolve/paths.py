"""The URL path a request is matched by, cleaned up as httpd does first.

Usage::

    from wsgi_reproxy.resolve.paths import merge_slashes, request_path

    request_path({"SCRIPT_NAME": "/app", "PATH_INFO": "/a/../b"})  # '/app/b'
    merge_slashes("/app//b")                                       # '/app/b'

URL path
    ``SCRIPT_NAME + PATH_INFO`` (``"/"`` when empty), with ``.`` and ``..``
    segments removed as Apache's ``ap_getparents`` does before any section is
    walked, so ``/public/../private`` is matched as ``/private``; for
    matching, runs of ``/`` are merged (``MergeSlashes On``, httpd's default
    since 2.4.39), for regex sections too.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

_MERGE_SLASHES = re.compile(r"//+")


def request_path(environ: Mapping[str, Any]) -> str:
    """The URL path *environ* names; see the module docstring."""
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    if not path:
        return "/"
    if "." in path:
        return remove_dot_segments(path)
    return path


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, which is what httpd's ``ap_getparents`` implements.

    ``/a/b/../c`` -> ``/a/c``, ``/a/./`` -> ``/a/``, ``/..`` -> ``/``.
    """
    absolute = path.startswith("/")
    segments = path.split("/")[1:] if absolute else path.split("/")
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and out:
                out.pop()
            if i == last:
                out.append("")  # "/a/.." names the directory "/a/"
        else:
            out.append(segment)
    return ("/" if absolute else "") + "/".join(out)


def normpath(path: str) -> str:
    """``posixpath.normpath``, with one leading slash at most."""
    path = posixpath.normpath(path)
    # POSIX lets normpath keep exactly two leading slashes; we want one.
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path


def merge_slashes(path: str) -> str:
    """Collapse runs of ``/``, as httpd does before matching (``MergeSlashes``)."""
    return _MERGE_SLASHES.sub("/", path) if "//" in path else path
