"""The views: check the permission, then let the middleware send the file."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django_sendfile import sendfile

from wsgi_reproxy.django import ReproxyResponse


def _user(request: HttpRequest) -> str:
    user = settings.DOWNLOAD_TOKENS.get(request.GET.get("token", ""))
    if user is None:
        raise PermissionDenied
    return str(user)


def download(request: HttpRequest, name: str) -> HttpResponseBase:
    """A file on the storage nodes: the middleware streams the first copy."""
    user = _user(request)
    meta = settings.DOWNLOAD_FILES.get(name)
    # 404 rather than 403 for a file the user may not read: do not confirm
    # that it exists.
    if meta is None or user not in meta["readers"]:
        raise Http404(name)
    # An empty body: wsgi_reproxy discards it and streams the stored file.
    return ReproxyResponse(
        [f"{node}/{meta['key']}" for node in settings.STORAGE_NODES],
        content_type=meta["type"],
        filename=name,
        as_attachment=True,
    )


def local(request: HttpRequest, name: str) -> HttpResponseBase:
    """A file below SENDFILE_ROOT, by django-sendfile2 and our backend."""
    _user(request)
    # sendfile() refuses a name outside SENDFILE_ROOT (404); the middleware
    # checks again, with symlinks resolved, against ReproxyFileRoot.
    return sendfile(request, settings.SENDFILE_ROOT / name, attachment=True)
