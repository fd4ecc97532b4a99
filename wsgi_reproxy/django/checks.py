"""``manage.py check`` for wsgi_reproxy: load ``settings.WSGI_REPROXY_CONFIG``.

Registered when the app ``"wsgi_reproxy.django"`` is in ``INSTALLED_APPS``.
Errors are ``wsgi_reproxy.E001`` (``file:line: message``), the config's
warnings ``wsgi_reproxy.W002``; ``W001`` says the setting is missing.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings as django_settings
from django.core import checks

from ..exceptions import ConfigError
from ..resolve.resolver import load_config

__all__ = ["check_config"]


def check_config(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: load ``settings.WSGI_REPROXY_CONFIG``, report it."""
    path = getattr(django_settings, "WSGI_REPROXY_CONFIG", None)
    if path is None:
        return [
            checks.Warning(
                "WSGI_REPROXY_CONFIG is not set",
                hint="Set it to the reproxy config file your wsgi.py loads.",
                id="wsgi_reproxy.W001",
            )
        ]
    try:
        config = load_config(os.fspath(path))
    except ConfigError as exc:
        return [checks.Error(str(exc), id="wsgi_reproxy.E001")]
    return [checks.Warning(w, id="wsgi_reproxy.W002") for w in config.warnings]


checks.register(check_config)
