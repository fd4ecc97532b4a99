"""WSGI entry point: Django's application wrapped in wsgi_reproxy.

``application`` is what gunicorn, mod_wsgi or uWSGI serve
(``gunicorn downloads_site.wsgi``).  ``django_application`` is the bare
Django app, for ``wsgi-reproxy serve``, which does the wrapping itself::

    wsgi-reproxy serve reproxy.conf downloads_site.wsgi:django_application
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.wsgi import get_wsgi_application

from wsgi_reproxy import ReproxyMiddleware, load_config

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "downloads_site.settings")

django_application = get_wsgi_application()

# The config is read once, at start-up; a bad line stops the server here with
# "file:line: message".
application = ReproxyMiddleware(
    django_application,
    load_config(Path(__file__).resolve().parent.parent / "reproxy.conf"),
)
