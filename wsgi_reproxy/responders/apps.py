"""The application's side: asking for a reproxy, and whether anyone listens.

What the framework helpers (:mod:`wsgi_reproxy.flask`,
:mod:`wsgi_reproxy.django`) share: the environ key the middleware sets, the
headers of a response that asks for a URL list, and the answer when no
middleware is there to act on it::

    if not middleware_present(environ):
        status, headers, body = NO_MIDDLEWARE
    else:
        disposition = content_disposition("report.pdf", as_attachment=True)
        headers = url_trigger(urls, disposition=disposition, name="report.pdf")
"""

from __future__ import annotations

import mimetypes
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from werkzeug.http import dump_options_header

from ..config.settings import Settings

#: environ key holding the request's resolved :class:`Settings`; only the
#: middleware sets it, so unlike ``X-Proxy-Capabilities`` a client cannot.
SETTINGS_KEY = "wsgi_reproxy.settings"

#: The response header naming app headers the client gets instead of the
#: target's, for this response only (added to ``PreserveHeaders``).
PRESERVE_HEADER = "X-Reproxy-Preserve-Headers"

_NO_MIDDLEWARE_BODY = (
    b"501 Not Implemented\n\nThis download needs wsgi_reproxy.ReproxyMiddleware"
    b" in front of the application.\n"
)

#: The answer of a helper when no middleware wraps the app (e.g. ``flask
#: run``): a 501 that says why, never the empty body as if it were the file,
#: and never a fetch of a URL that no config allowed.
NO_MIDDLEWARE = (
    "501 Not Implemented",
    [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(_NO_MIDDLEWARE_BODY))),
    ],
    _NO_MIDDLEWARE_BODY,
)


def middleware_present(environ: Mapping[str, Any]) -> bool:
    """Whether a :class:`~wsgi_reproxy.ReproxyMiddleware` wraps this request."""
    return isinstance(environ.get(SETTINGS_KEY), Settings)


def can_reproxy(environ: Mapping[str, Any]) -> bool:
    """Whether an ``X-Reproxy-Url`` answer to this request will be reproxied.

    True only when a :class:`~wsgi_reproxy.ReproxyMiddleware` wraps the
    application and ``AllowReproxy`` is on for the request's URL.  Reads the
    settings the middleware put in the environ, so a client-sent
    ``X-Proxy-Capabilities`` header cannot make it true::

        if can_reproxy(request.environ):
            return reproxy(urls)
        return redirect(presigned_url)
    """
    settings = environ.get(SETTINGS_KEY)
    return isinstance(settings, Settings) and settings.allow_reproxy


def content_disposition(download_name: str | None, as_attachment: bool) -> str | None:
    """``Content-Disposition`` as werkzeug's ``send_file`` writes it.

    ``inline`` or ``attachment`` with the name; a non-ASCII name gets an
    ASCII ``filename`` and an RFC 6266 ``filename*``.

    :raise TypeError: an attachment without a name, as ``send_file``.
    """
    if download_name is None:
        if as_attachment:
            raise TypeError("No name provided for attachment.")
        return None
    try:
        download_name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", download_name)
        names = {
            "filename": simple.encode("ascii", "ignore").decode("ascii"),
            "filename*": "UTF-8''" + quote(download_name, safe="!#$&+^`|~"),
        }
    else:
        names = {"filename": download_name}
    return dump_options_header("attachment" if as_attachment else "inline", names)


def url_trigger(
    urls: str | Iterable[str],
    *,
    content_type: str | None = None,
    disposition: str | None = None,
    name: str | None = None,
) -> list[tuple[str, str]]:
    """The headers of a response asking for *urls*, tried in order.

    *content_type* (guessed from the file *name* when not given, as
    ``send_file`` and ``FileResponse`` do) and the *disposition* are named
    in :data:`PRESERVE_HEADER`, so the client gets them over the target's.

    :param urls: one URL, several separated by blanks, or an iterable.
    :raise ValueError: no URL.
    """
    listed = [urls] if isinstance(urls, str) else list(urls)
    value = " ".join(u.strip() for u in listed if u.strip())
    if not value:
        raise ValueError("reproxy needs at least one URL")
    headers = [("X-Reproxy-Url", value)]
    if content_type is None and name:
        content_type = mimetypes.guess_type(name)[0]
    kept = []
    if content_type is not None:
        headers.append(("Content-Type", content_type))
        kept.append("Content-Type")
    if disposition is not None:
        headers.append(("Content-Disposition", disposition))
        kept.append("Content-Disposition")
    if kept:
        headers.append((PRESERVE_HEADER, " ".join(kept)))
    return headers
