"""The backend app wrapped in wsgi_reproxy, exactly as the issue asks.

Kept apart from :mod:`_bench.app` so the perlbal/nginx backend never imports
the package under test. Logging stays as gunicorn leaves it: the
``wsgi_reproxy`` logger has only its ``wsgi.errors`` fallback, so the
per-reproxy INFO line costs a level check, and WARNINGs (a dead first URL)
reach gunicorn's error log through ``wsgi.errors``, as they would in a
default deployment.
"""

from __future__ import annotations

from wsgi_reproxy import ReproxyMiddleware, parse_config

from .app import app

CONFIG = "<Location />\nAllowReproxy On\n</Location>"

application = ReproxyMiddleware(app, parse_config(CONFIG))
