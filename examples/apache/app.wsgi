"""mod_wsgi entry point: examples/flask/app.py wrapped in the middleware.

The middleware reads ``reproxy.conf``, the very file Apache ``Include``s
(site.conf), so one place decides which URLs are reproxied.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wsgi_reproxy import ReproxyMiddleware, load_config

HERE = Path(__file__).resolve().parent
# The Flask example lives next door, in ../flask.
sys.path.insert(0, str(HERE.parent / "flask"))

from app import app  # noqa: E402

application = ReproxyMiddleware(app, load_config(HERE / "reproxy.conf"))
