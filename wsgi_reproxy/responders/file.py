"""``X-Reproxy-File``: answer with a local file, like a static file server.

perlbal's extension (SPEC §4 item 9).  An application that checked
permissions answers ``X-Reproxy-File: /srv/files/42.jpg`` and the middleware
serves that file through ``wsgi.file_wrapper`` (``sendfile`` under gunicorn
and mod_wsgi) with ``Range`` (206/416), ``HEAD`` and conditional requests
(304/412), but only when the path, with every symlink resolved, lies strictly
below a ``ReproxyFileRoot`` configured for the request::

    response, refused = reproxy_file(environ, value, settings, app_headers)
    if refused is not None:
        logger.warning("X-Reproxy-File %r refused: %s", value, refused)
    start_response(response.status, response.headers)
    return response.body

A refusal answers ``404 Not Found`` with a short text body, as perlbal did for
a file it could not stat; the reason is only for the log.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import (
    HTTP_STATUS_CODES,
    http_date,
    parse_range_header,
)
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from ..config.headernames import is_preservable
from ..config.settings import Settings
from .confine import Refusal, open_file, resolve_file
from .headers import expected_size

#: Read size when the server iterates the file instead of using sendfile.
BLOCK_SIZE = 64 * 1024

_NOT_FOUND_BODY = b"404 Not Found\n"


class FileResponse(NamedTuple):
    """A WSGI answer: give ``status`` and ``headers`` to ``start_response``
    and return ``body`` (it has ``close()``; the server must call it)."""

    status: str
    headers: list[tuple[str, str]]
    body: Iterable[bytes]


class _FileSlice:
    """Bytes ``[start, end)`` of an open file, for ``wsgi.file_wrapper``.

    ``fileno()`` lets gunicorn and mod_wsgi ``sendfile`` from the current
    offset for ``Content-Length`` bytes; ``read()`` stops at *end* for servers
    that iterate (wsgiref, werkzeug's FileWrapper), which would otherwise send
    the rest of the file after a range, or bytes appended since the ``stat``.
    """

    mode = "rb"

    def __init__(self, file: Any, start: int, end: int) -> None:
        self._file = file
        self._end = end
        file.seek(start)

    def read(self, size: int = -1) -> bytes:
        left = max(0, self._end - self._file.tell())
        if size < 0 or size > left:
            size = left
        data: bytes = self._file.read(size)
        return data

    def fileno(self) -> int:
        fd: int = self._file.fileno()
        return fd

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        pos: int = self._file.seek(offset, whence)
        return pos

    def tell(self) -> int:
        pos: int = self._file.tell()
        return pos

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()


def not_found() -> FileResponse:
    """The refusal answer: ``404`` with a short plain-text body."""
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(_NOT_FOUND_BODY))),
    ]
    return FileResponse("404 Not Found", headers, [_NOT_FOUND_BODY])


def guess_type(path: str) -> str:
    """``Content-Type`` for *path* from its name (:mod:`mimetypes`).

    A compressed file (``.gz``, ``.bz2``, ``.xz``...) is
    ``application/octet-stream``: naming the inner type would need
    ``Content-Encoding``, and clients would then decompress a file the user
    meant to download (nginx serves ``.gz`` the same way).  No charset is
    added, as by nginx: the file's encoding is not known.
    """
    mimetype, encoding = mimetypes.guess_type(path, strict=False)
    if mimetype is None or encoding is not None:
        return "application/octet-stream"
    return mimetype


def _range_environ(environ: Mapping[str, Any]) -> Mapping[str, Any]:
    """*environ* without a ``Range`` header werkzeug would answer with 416
    although RFC 9110 §14.2 lets a server ignore it.

    werkzeug answers 416 to a syntactically invalid range and to several
    ranges; nginx (and RFC 9110 §14.2: "MAY ignore") send the whole file.
    Only a single well-formed range that misses the file gets a 416.
    """
    raw = environ.get("HTTP_RANGE")
    if raw is None:
        return environ
    parsed = parse_range_header(raw)
    if parsed is not None and parsed.units == "bytes" and len(parsed.ranges) == 1:
        return environ
    return {k: v for k, v in environ.items() if k != "HTTP_RANGE"}


def _apply_app_headers(
    headers: Headers,
    app_headers: Sequence[tuple[str, str]],
    preserve_headers: Iterable[str],
) -> None:
    # Issue 5: the app's Content-Type wins over the guess when it sent one.
    # SPEC §4 item 5: each PreserveHeaders header the app sent replaces the
    # generated one, every value, bytes unchanged; Content-Length,
    # Content-Range and hop-by-hop headers never come from the app, and
    # X-Reproxy-* headers never reach the client.
    names = {"content-type"}
    names.update(n.lower() for n in preserve_headers)
    for name in sorted(filter(is_preservable, names)):
        values = [(n, v) for n, v in app_headers if n.lower() == name]
        if values:
            headers.remove(name)
            headers.extend(values)


def _respond(
    environ: Mapping[str, Any],
    file: Any,
    st: os.stat_result,
    path: str,
    app_headers: Sequence[tuple[str, str]],
    preserve_headers: Iterable[str],
) -> FileResponse:
    size = st.st_size
    # werkzeug's conditional helpers decide status and headers on a bodiless
    # Response; the body is chosen afterwards, so a 200 or 206 hands the real
    # file to wsgi.file_wrapper (sendfile) instead of werkzeug's RangeWrapper.
    resp = Response(status=200, content_type=guess_type(path))
    resp.content_length = size
    resp.headers["Last-Modified"] = http_date(st.st_mtime)
    # nginx's ETag: modification time and size, in hex (ns for precision).
    resp.set_etag(f"{st.st_mtime_ns:x}-{size:x}")
    try:
        resp.make_conditional(
            _range_environ(environ),  # type: ignore[arg-type]
            accept_ranges=True,
            complete_length=size,
        )
    except RequestedRangeNotSatisfiable:
        resp.status_code = 416
        resp.headers["Content-Range"] = f"bytes */{size}"
        resp.content_length = 0
    headers = resp.get_wsgi_headers(environ)  # type: ignore[arg-type]
    # Servers add their own Date (gunicorn would send two).
    headers.remove("Date")
    _apply_app_headers(headers, app_headers, preserve_headers)
    status = f"{resp.status_code} {HTTP_STATUS_CODES[resp.status_code]}"
    if resp.status_code == 412:
        headers["Content-Length"] = "0"
    head = environ.get("REQUEST_METHOD", "GET").upper() == "HEAD"
    if head or resp.status_code not in (200, 206):
        file.close()
        return FileResponse(status, headers.to_wsgi_list(), [])
    start, end = 0, size
    if resp.status_code == 206 and resp.content_range.start is not None:
        start, end = resp.content_range.start, resp.content_range.stop or size
    body = wrap_file(environ, _FileSlice(file, start, end), BLOCK_SIZE)  # type: ignore[arg-type]
    return FileResponse(status, headers.to_wsgi_list(), body)


def serve_file(
    environ: Mapping[str, Any],
    path: str,
    app_headers: Sequence[tuple[str, str]],
    preserve_headers: Iterable[str],
) -> FileResponse:
    """Answer the request with the file at *path*.

    *path* must come from :func:`resolve_file`: it is served without any root
    check.  If it vanished since, the answer is :func:`not_found`.

    :param environ: the request (method, ``Range``, conditional headers,
        ``wsgi.file_wrapper``).
    :param path: the resolved file path.
    :param app_headers: the app's response headers (``Content-Type`` and the
        ``PreserveHeaders`` ones are taken from it).
    :param preserve_headers: ``settings.preserve_headers``.
    """
    return _serve(environ, path, app_headers, preserve_headers, None)[0]


def _serve(
    environ: Mapping[str, Any],
    path: str,
    app_headers: Sequence[tuple[str, str]],
    preserve_headers: Iterable[str],
    expected: int | None,
    roots: Sequence[str] = (),
) -> tuple[FileResponse, str | None]:
    opened = open_file(path, roots)
    if isinstance(opened, Refusal):
        return not_found(), opened.reason
    file, st = opened
    if expected is not None and expected != st.st_size:
        file.close()
        reason = f"size {st.st_size} differs from X-Reproxy-Expected-Size {expected}"
        return not_found(), reason
    try:
        return _respond(environ, file, st, path, app_headers, preserve_headers), None
    except BaseException:
        file.close()
        raise


def reproxy_file(
    environ: Mapping[str, Any],
    value: str,
    settings: Settings,
    app_headers: Sequence[tuple[str, str]],
) -> tuple[FileResponse, str | None]:
    """The whole ``X-Reproxy-File`` step: the answer and a refusal reason.

    Resolves *value* below ``settings.file_roots``, checks the app's
    ``X-Reproxy-Expected-Size`` if any (perlbal answers 404 when the file's
    size differs), then serves it.  On refusal the answer is
    :func:`not_found` and the reason is returned for the caller to log.

    :param value: the ``X-Reproxy-File`` header value (surrounding blanks are
        ignored).
    """
    resolved = resolve_file(value.strip(), settings.file_roots)
    if isinstance(resolved, Refusal):
        return not_found(), resolved.reason
    expected = expected_size(app_headers)
    if isinstance(expected, str):
        return not_found(), expected
    return _serve(
        environ,
        resolved,
        app_headers,
        # The app's caching and security headers win here too (SPEC §3).
        (*settings.preserve_headers, *settings.keep_app_headers),
        expected,
        settings.file_roots,  # opened below the root, never through a symlink
    )
