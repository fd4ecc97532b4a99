"""Typed reproxy settings: what one request (or one config section) says.

:class:`Overrides` is what a single config context sets (every field may be
unset); :class:`Settings` is the fully merged result for one request.  The
parser produces ``Overrides``, the resolver folds them into ``Settings``, and
the middleware only ever reads ``Settings``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .dialects import AccelRedirect

#: ``ReproxyForwardHeaders`` default (SPEC §3): enough for Range and
#: conditional requests to work end to end; Cookie and Authorization are never
#: forwarded unless a config lists them.
DEFAULT_FORWARD_HEADERS: tuple[str, ...] = (
    "Range",
    "If-Range",
    "If-Modified-Since",
    "If-None-Match",
    "If-Match",
    "If-Unmodified-Since",
)

#: ``ReproxyKeepAppHeaders`` default (SPEC §3): the app's caching and
#: security headers win over the storage node's, so a file the app checked
#: permissions for keeps ``Cache-Control: private`` and its ``Vary`` (issue 11).
DEFAULT_KEEP_APP_HEADERS: tuple[str, ...] = (
    "Cache-Control",
    "Expires",
    "Pragma",
    "Vary",
    "Set-Cookie",
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Strict-Transport-Security",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Cross-Origin-Embedder-Policy",
    "Cross-Origin-Resource-Policy",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective settings for one request.

    :param allow_reproxy: ``AllowReproxy``; reproxying happens only when on.
    :param preserve_headers: ``PreserveHeaders``, as written in the config.
    :param allow_targets: ``ReproxyAllowTargets`` patterns; empty means any
        ``http``/``https`` URL.
    :param connect_timeout: ``ReproxyTimeout`` first value, seconds.
    :param read_timeout: ``ReproxyTimeout`` second value, seconds: any one
        receive, and the whole status line and headers of one try.
    :param total_timeout: ``ReproxyTimeout`` third value, seconds: all tries
        of one request together, up to the first body byte; ``None``: no bound.
    :param max_redirects: ``ReproxyMaxRedirects``.
    :param forward_headers: ``ReproxyForwardHeaders``.
    :param file_roots: ``ReproxyFileRoot`` and ``XSendFilePath``; empty
        refuses ``X-Reproxy-File`` and ``X-Sendfile``.
    :param keep_app_headers: ``ReproxyKeepAppHeaders``: app headers kept over
        the target's besides ``preserve_headers``; empty is mod_reproxy's
        behaviour (``None`` in the config).
    :param log_query: ``ReproxyLogQuery``: log target URLs with their query
        string instead of ``?…``.
    :param sendfile: ``ReproxySendfile`` / ``XSendFile``: honour ``X-Sendfile``.
    :param accel_redirects: ``ReproxyAccelRedirect`` prefixes and targets, in
        config order (the longest matching prefix wins).
    :param head_method: ``ReproxyHeadMethod``: what a client HEAD sends.
    :param max_url_length: ``ReproxyMaxUrlLength``: longest target URL.
    :param origins: ``(field, "file:line")`` pairs telling where each field
        that is not a default was set; see :meth:`origin`.
    """

    allow_reproxy: bool = False
    preserve_headers: tuple[str, ...] = ()
    allow_targets: tuple[str, ...] = ()
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    total_timeout: float | None = None
    max_redirects: int = 0
    forward_headers: tuple[str, ...] = DEFAULT_FORWARD_HEADERS
    file_roots: tuple[str, ...] = ()
    keep_app_headers: tuple[str, ...] = DEFAULT_KEEP_APP_HEADERS
    log_query: bool = False
    sendfile: bool = False
    accel_redirects: tuple[AccelRedirect, ...] = ()
    head_method: str = "HEAD"
    max_url_length: int = 8192
    origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def origin(self, name: str) -> str | None:
        """Return ``"file:line"`` where field *name* was set, or ``None``."""
        for key, where in self.origins:
            if key == name:
                return where
        return None


#: The names of the merged fields, in declaration order.
SETTING_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Settings) if f.name != "origins"
)

DEFAULT_SETTINGS = Settings()


@dataclass(frozen=True, slots=True)
class Overrides:
    """What one config context (server, virtual host or section) sets.

    ``values`` holds ``(field, value)`` pairs for the fields the context set,
    ``origins`` the matching ``(field, "file:line")`` pairs.
    """

    values: tuple[tuple[str, object], ...] = ()
    origins: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.values)

    def apply(self, base: Settings, *, replace: bool = False) -> Settings:
        """Merge these overrides over *base*; see :func:`merge`."""
        return merge(base, (self,), replace=replace)


def merge(
    base: Settings, contexts: Iterable[Overrides], *, replace: bool = False
) -> Settings:
    """Merge the *contexts* over *base*, in order: the one merge rule.

    Field-wise by default: unset fields keep the value from before.  With
    ``replace=True`` a context that sets anything starts again from the
    defaults, which is what mod_reproxy did (it had no merge function, so
    Apache used the innermost section's whole configuration).  Builds one
    :class:`Settings` however many contexts there are: ``dataclasses.replace``
    is the most expensive step of a request's resolve.
    """
    values: dict[str, Any] = {}
    origins: dict[str, str] | None = None
    for overrides in contexts:
        if not overrides.values:
            continue
        if replace:  # a context that sets anything starts from the defaults
            base, values, origins = DEFAULT_SETTINGS, {}, {}
        elif origins is None:
            origins = dict(base.origins)
        values.update(overrides.values)
        origins.update(overrides.origins)
    if origins is None:
        return base
    return dataclasses.replace(base, **values, origins=tuple(origins.items()))
