"""Placeholder: the middleware lands with issue 3."""

from __future__ import annotations


class ReproxyMiddleware:
    pass
