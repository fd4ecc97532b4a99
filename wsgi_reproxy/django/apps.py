"""The ``INSTALLED_APPS`` entry ``"wsgi_reproxy.django"``: the system check."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["WsgiReproxyConfig"]


class WsgiReproxyConfig(AppConfig):
    """Registers :func:`wsgi_reproxy.django.checks.check_config`."""

    name = "wsgi_reproxy.django"
    label = "wsgi_reproxy"
    verbose_name = "wsgi_reproxy"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers check_config)
