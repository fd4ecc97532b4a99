"""Flask: :func:`reproxy`, shaped like :func:`flask.send_file`, for URLs.

A view checks permissions and answers with the storage URLs; the middleware
in front streams the first one that works::

    from wsgi_reproxy.flask import reproxy

    @app.get("/download/<name>")
    def download(name):
        ...  # abort(403) / abort(404) unless the user may read it
        return reproxy(
            [f"http://10.0.0.5:7500/{key}", f"http://10.0.0.6:7500/{key}"],
            download_name=name,
            as_attachment=True,
        )

    app.wsgi_app = ReproxyMiddleware(app.wsgi_app, load_config("reproxy.conf"))

Files need no helper: Flask's own ``send_file`` with ``USE_X_SENDFILE =
True`` answers ``X-Sendfile``, which the middleware serves with
``ReproxySendfile On`` (or mod_xsendfile's ``XSendFile On``) and a root.

Without the middleware in front (``flask run`` on the bare app),
:func:`reproxy` answers ``501 Not Implemented`` and logs a WARNING: the
client never gets an empty body as if it were the file, and the app never
fetches a URL that no config allowed.  Wrap ``app.wsgi_app`` as above and
the dev server reproxies too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import flask

from .responders.apps import (
    NO_MIDDLEWARE,
    content_disposition,
    middleware_present,
    url_trigger,
)

__all__ = ["reproxy"]

logger = logging.getLogger(__name__)


def reproxy(
    urls: str | Iterable[str],
    *,
    mimetype: str | None = None,
    download_name: str | None = None,
    as_attachment: bool = False,
) -> flask.Response:
    """A response asking the middleware to stream *urls*, tried in order.

    :param urls: one URL, several separated by blanks, or an iterable of them.
    :param mimetype: the client's ``Content-Type`` (guessed from
        *download_name* when not given; else the target's).
    :param download_name: the file name in ``Content-Disposition``.
    :param as_attachment: ``attachment`` rather than ``inline``; needs
        *download_name*, as ``send_file``.
    :raise TypeError: ``as_attachment`` without ``download_name``.
    :raise ValueError: no URL.
    """
    headers = url_trigger(
        urls,
        content_type=mimetype,
        disposition=content_disposition(download_name, as_attachment),
        name=download_name,
    )
    response_class = flask.current_app.response_class
    if not middleware_present(flask.request.environ):
        logger.warning(
            "reproxy() for %s without wsgi_reproxy.ReproxyMiddleware in front:"
            " answered 501",
            flask.request.path,
        )
        status, fallback, body = NO_MIDDLEWARE
        return response_class(body, status=status, headers=fallback)
    response = response_class(b"", status=200)
    # The target's Content-Type unless the view named one.
    del response.headers["Content-Type"]
    response.headers.extend(headers)
    return response
