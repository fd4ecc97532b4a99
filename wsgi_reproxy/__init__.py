"""X-Reproxy-Url for any WSGI application, configured like Apache mod_reproxy."""

from __future__ import annotations

import logging

from .config.settings import Settings
from .exceptions import ConfigError, ReproxyError, TruncatedBodyError, UpstreamError
from .middleware import ReproxyMiddleware
from .resolve.resolver import Config, load_config, parse_config
from .responders.apps import can_reproxy
from .responders.cache import ReproxyCache

__version__ = "0.1.0.dev0"

# A library never configures logging; this only silences "no handler" noise.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Config",
    "ConfigError",
    "ReproxyCache",
    "ReproxyError",
    "ReproxyMiddleware",
    "Settings",
    "TruncatedBodyError",
    "UpstreamError",
    "can_reproxy",
    "load_config",
    "parse_config",
]
