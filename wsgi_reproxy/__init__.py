"""X-Reproxy-Url for any WSGI application, configured like Apache mod_reproxy."""

from __future__ import annotations

from .config.settings import Settings
from .exceptions import ConfigError, ReproxyError, TruncatedBodyError, UpstreamError
from .logs import install_fallback
from .middleware import ReproxyMiddleware
from .resolve.resolver import Config, load_config, parse_config
from .responders.apps import can_reproxy
from .responders.cache import ReproxyCache

__version__ = "0.1.0.dev0"

# A library never configures logging; in place of the usual NullHandler, one
# that sends WARNING and above to the request's wsgi.errors until the app
# configures logging (SPEC §5; wsgi_reproxy.logs).
install_fallback(__name__)

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
