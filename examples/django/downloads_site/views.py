"""The one view: check the permission, then let the middleware send the file."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse


def download(request: HttpRequest, name: str) -> HttpResponse:
    user = settings.DOWNLOAD_TOKENS.get(request.GET.get("token", ""))
    if user is None:
        raise PermissionDenied
    meta = settings.DOWNLOAD_FILES.get(name)
    # 404 rather than 403 for a file the user may not read: do not confirm
    # that it exists.
    if meta is None or user not in meta["readers"]:
        raise Http404(name)
    # An empty body: wsgi_reproxy discards it and streams the stored file.
    response = HttpResponse(b"", content_type=meta["type"])
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Reproxy-Url"] = " ".join(
        f"{node}/{meta['key']}" for node in settings.STORAGE_NODES
    )
    return response
