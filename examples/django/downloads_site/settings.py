"""Settings of the example project: no database, one view.

A real project keeps its own settings; the only line wsgi_reproxy needs is in
``wsgi.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: examples/django, where reproxy.conf and files/ are.
BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

ROOT_URLCONF = "downloads_site.urls"
WSGI_APPLICATION = "downloads_site.wsgi.application"
# The app entry registers wsgi_reproxy's system check: ``manage.py check``
# loads WSGI_REPROXY_CONFIG and reports its errors and warnings.
INSTALLED_APPS = ["wsgi_reproxy.django"]
WSGI_REPROXY_CONFIG = BASE_DIR / "reproxy.conf"

# django-sendfile2 with wsgi_reproxy's backend: ``sendfile(request, path)``
# answers X-Reproxy-File, served by the middleware below ReproxyFileRoot.
SENDFILE_BACKEND = "wsgi_reproxy.django.sendfile"
SENDFILE_ROOT = BASE_DIR / "files"
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# The storage nodes, in the order to try them (a MogileFS tracker would hand
# out this list per file).
STORAGE_NODES = os.environ.get(
    "STORAGE_NODES", "http://127.0.0.1:7500 http://127.0.0.1:7501"
).split()

# Stand-ins for the database: token -> user, file name -> where it is stored
# and who may read it.
DOWNLOAD_TOKENS = {"alice-token": "alice", "bob-token": "bob"}
DOWNLOAD_FILES = {
    "report.pdf": {
        "key": "dev1/0/000/042.fid",
        "readers": ["alice"],
        "type": "application/pdf",
    },
    "holiday.jpg": {
        "key": "dev1/0/000/043.fid",
        "readers": ["alice", "bob"],
        "type": "image/jpeg",
    },
}
