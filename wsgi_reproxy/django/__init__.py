"""Django: a django-sendfile2 backend, :class:`ReproxyResponse`, a system check.

In ``settings.py``::

    INSTALLED_APPS = [..., "wsgi_reproxy.django"]      # the system check
    WSGI_REPROXY_CONFIG = BASE_DIR / "reproxy.conf"   # what wsgi.py loads
    SENDFILE_BACKEND = "wsgi_reproxy.django.sendfile"  # django-sendfile2
    SENDFILE_ROOT = "/srv/files"                       # below a ReproxyFileRoot

in ``wsgi.py``::

    application = ReproxyMiddleware(
        get_wsgi_application(), load_config(settings.WSGI_REPROXY_CONFIG)
    )

and in a view, for files (``django_sendfile.sendfile(request, path)``) or for
URLs on storage nodes::

    return ReproxyResponse(urls, filename="report.pdf", as_attachment=True)

Modules: ``sendfile`` (the django-sendfile2 backend), ``checks`` (the system
check), ``apps`` (the ``INSTALLED_APPS`` entry that registers it).
``manage.py check`` loads ``WSGI_REPROXY_CONFIG`` and reports its errors
(``wsgi_reproxy.E001``) and warnings (``wsgi_reproxy.W002``).

Without the middleware in front (``runserver``, the test client on the bare
Django app): the ``sendfile`` backend serves the file itself through
django-sendfile2's ``simple`` backend, as its ``development`` mode does;
:class:`ReproxyResponse` answers ``501 Not Implemented`` and logs a WARNING,
never an empty 200 and never a fetch of a URL that no config allowed.  The
middleware's presence is read from the environ Django's ``request_started``
signal carries (the middleware's settings key; a client cannot forge it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from django.core.signals import request_started
from django.http import HttpResponse
from django.utils.http import content_disposition_header

from ..responders.apps import NO_MIDDLEWARE, middleware_present, url_trigger

__all__ = ["ReproxyResponse"]

logger = logging.getLogger(__name__)

#: The environ of the request being handled in this context, from
#: ``request_started`` (``None`` under ASGI or outside a request).
_environ: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "wsgi_reproxy_django_environ", default=None
)


def _remember_environ(sender: object, environ: Any = None, **kwargs: Any) -> None:
    _environ.set(environ if isinstance(environ, Mapping) else None)


request_started.connect(_remember_environ, dispatch_uid="wsgi_reproxy.django")


class ReproxyResponse(HttpResponse):
    """Like :class:`~django.http.FileResponse`, for files on storage nodes.

    The body is empty; the middleware streams the first of *urls* that
    works, with the target's status, length and ranges.  *content_type*
    (guessed from *filename* when not given) and ``Content-Disposition``
    reach the client over the target's own.

    :param urls: one URL, several separated by blanks, or an iterable.
    :param content_type: the client's ``Content-Type``; ``None``: guessed
        from *filename*, else the target's.
    :param filename: the name in ``Content-Disposition``.
    :param as_attachment: ``attachment`` rather than ``inline``.
    :param kwargs: ``status``, ``reason``, ``headers`` as for HttpResponse.
    """

    def __init__(
        self,
        urls: str | Iterable[str],
        *,
        content_type: str | None = None,
        filename: str | None = None,
        as_attachment: bool = False,
        **kwargs: Any,
    ) -> None:
        # FileResponse's rule: a disposition when attaching or when named.
        disposition = (
            content_disposition_header(as_attachment, filename or "")
            if as_attachment or filename
            else None
        )
        headers = url_trigger(
            urls, content_type=content_type, disposition=disposition, name=filename
        )
        environ = _environ.get()
        if environ is None or not middleware_present(environ):
            logger.warning(
                "ReproxyResponse without wsgi_reproxy.ReproxyMiddleware in front:"
                " answered 501"
            )
            status, fallback, body = NO_MIDDLEWARE
            super().__init__(body, status=int(status[:3]), headers=dict(fallback))
            return
        super().__init__(b"", **kwargs)
        # The target's Content-Type unless one was given or guessed.
        del self.headers["Content-Type"]
        for name, value in headers:
            self.headers[name] = value
