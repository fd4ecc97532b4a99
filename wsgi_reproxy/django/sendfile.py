"""The django-sendfile2 backend: ``SENDFILE_BACKEND = "wsgi_reproxy.django.sendfile"``.

``django_sendfile.sendfile(request, path, attachment=True)`` then answers
``X-Reproxy-File``, which the middleware serves below a ``ReproxyFileRoot``
(set one above ``SENDFILE_ROOT``) where ``AllowReproxy`` is on; django-sendfile2
adds ``Content-Type`` and ``Content-Disposition`` (list the latter in
``PreserveHeaders``).  Without the middleware in front (``runserver``), the
file is served by django-sendfile2's own ``simple`` backend instead.
"""

from __future__ import annotations

import os
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase

from ..responders.apps import middleware_present

__all__ = ["sendfile"]


def sendfile(request: HttpRequest, filename: Any, **kwargs: Any) -> HttpResponseBase:
    """django-sendfile2 backend: ``SENDFILE_BACKEND = "wsgi_reproxy.django.sendfile"``.

    Answers ``X-Reproxy-File`` (``AllowReproxy On`` and a ``ReproxyFileRoot``
    above ``SENDFILE_ROOT``); django-sendfile2 adds ``Content-Type`` and
    ``Content-Disposition``.  Without the middleware, serves the file itself
    with django-sendfile2's ``simple`` backend.
    """
    if not middleware_present(request.META):
        from django_sendfile.backends.simple import sendfile as simple

        response: HttpResponseBase = simple(request, filename, **kwargs)
        return response
    response = HttpResponse()
    response["X-Reproxy-File"] = os.fspath(filename)
    return response
