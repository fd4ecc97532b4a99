"""Per-request settings: which sections match a request, merged in Apache's order.

Usage::

    from wsgi_reproxy import parse_config

    config = parse_config('''
    <Location /downloads>
        AllowReproxy On
    </Location>
    ''')
    config.resolve({"PATH_INFO": "/downloads/42"}).allow_reproxy  # True

The rules follow httpd 2.4 (``server/request.c`` and the "How the sections are
merged" page of the httpd docs); where WSGI gives less than Apache knows, the
choice is written down here or next to the code that makes it.

Virtual host
    Chosen by the request's host and port; the rules are in
    :mod:`wsgi_reproxy.resolve.vhosts`.

URL path
    ``SCRIPT_NAME + PATH_INFO``, cleaned up as httpd does; the rules are in
    :mod:`wsgi_reproxy.resolve.paths`.

Merge order
    The server's own directives, then the virtual host's, then the matching
    sections: ``<Directory>`` (fewest path components first), then
    ``<DirectoryMatch>``, then ``<Files>``/``<FilesMatch>`` (server level
    first, then those nested in a matched ``<Directory>``), then
    ``<Location>``/``<LocationMatch>``; file order within each group, and in
    each group the main server's sections before the virtual host's.  Which
    sections match, and their sort keys: :mod:`wsgi_reproxy.resolve.match`.

Filesystem path
    ``SCRIPT_FILENAME`` (mod_wsgi sets it), else the first ``Alias``-family
    line that matches, else ``UserDir`` for ``/~user``, else ``DocumentRoot``
    (the ``document_root`` argument wins over the virtual host's, which wins
    over the main server's) joined with the URL path; else no ``<Directory>``
    or ``<Files>`` section can match.  The rules are in
    :mod:`wsgi_reproxy.resolve.aliases`.  Nothing is looked up on disk: the
    last segment counts as a directory for ``<Directory>`` and as the file
    name for ``<Files>``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..config import parse
from ..config.records import ParsedConfig, Section, VirtualHost
from ..config.settings import DEFAULT_SETTINGS, Settings, merge
from .aliases import Mapped, Mapper
from .match import Entry, Index, match
from .paths import normpath, request_path
from .reach import unreachable
from .vhosts import VirtualHosts, request_host

MergeMode = Literal["field", "replace"]

#: Default number of ``(virtual host, URL path, filesystem path)`` results
#: kept; a hit skips matching entirely.  Bounded so that clients sending
#: endless distinct paths cost memory only up to this many entries.
DEFAULT_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a request gets the settings it gets (``wsgi-reproxy explain``).

    :param vhost: the chosen virtual host, ``None`` for the main server.
    :param sections: the matching sections, in the order they were merged.
    :param settings: the effective settings.
    :param url_path: the URL path ``<Location>`` sections were matched against.
    :param fs_path: the filesystem path for ``<Directory>``/``<Files>``, or
        ``None`` when there was none.
    :param host: the host name used to choose the virtual host.
    :param port: the port used to choose the virtual host, if known.
    :param mapped: how the filesystem path was found (which line), or
        ``None`` when there was none.
    """

    vhost: VirtualHost | None
    sections: tuple[Section, ...]
    settings: Settings
    url_path: str
    fs_path: str | None
    host: str
    port: int | None
    mapped: Mapped | None = None


@dataclass(frozen=True, slots=True)
class _Server:
    """The main server or one virtual host, ready to resolve against."""

    vhost: VirtualHost | None
    base: Settings  # main server (and virtual host) overrides applied
    index: Index | None  # the virtual host's own sections
    indexes: tuple[Index, ...]  # the main server's sections, then index
    mapper: Mapper  # URL path -> filesystem path


class Config:
    """A parsed configuration, indexed for fast per-request resolution.

    All the work happens here, once: patterns are compiled, sections sorted
    into Apache's merge order and indexed by literal path prefix, so that
    :meth:`resolve` costs a few dictionary lookups and tests only the
    sections that can match.

    :param parsed: what the parser produced.
    :param merge: ``"field"`` (default): a section overrides only the
        directives it sets.  ``"replace"``: a context that sets any of our
        directives replaces the whole setting set, as mod_reproxy did (it had
        no merge function, so Apache used the innermost context's whole
        configuration); this applies to the virtual host's own directives too.
    :param document_root: overrides every ``DocumentRoot`` directive, for
        servers (gunicorn) whose files are not where Apache's config said.
    :param cache_size: how many resolved results to keep (0 disables).
    :raises ValueError: for an unknown *merge* mode.
    :raises ConfigError: for a section pattern that does not compile.
    """

    def __init__(
        self,
        parsed: ParsedConfig,
        *,
        merge: MergeMode = "field",
        document_root: str | os.PathLike[str] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if merge not in ("field", "replace"):
            raise ValueError(f"merge must be 'field' or 'replace', not {merge!r}")
        self.parsed = parsed
        self.merge: MergeMode = merge
        self.document_root = None if document_root is None else os.fspath(document_root)
        self.ignored = parsed.ignored
        self._cache_size = cache_size
        replace = merge == "replace"
        notes: list[str] = list(parsed.warnings)
        self._main = Index(parsed.sections, 0, notes)
        main_base = parsed.overrides.apply(DEFAULT_SETTINGS, replace=replace)
        self._servers = [self._server(None, main_base, None, notes)]
        for vhost in parsed.vhosts:
            base = vhost.overrides.apply(main_base, replace=replace)
            self._servers.append(self._server(vhost, base, vhost.sections, notes))
        self._vhosts = VirtualHosts(parsed.vhosts, notes)
        notes += unreachable(parsed, [(s.vhost, s.mapper) for s in self._servers])
        self.warnings: tuple[str, ...] = tuple(notes)
        self._replace = replace
        self._lookup = (
            functools.lru_cache(maxsize=cache_size)(self._settings_for)
            if cache_size > 0
            else self._settings_for
        )

    def _server(
        self,
        vhost: VirtualHost | None,
        base: Settings,
        sections: tuple[Section, ...] | None,
        notes: list[str],
    ) -> _Server:
        root = self.document_root
        if root is None and vhost is not None:
            root = vhost.document_root
        if root is None:
            root = self.parsed.document_root
        if root is not None:
            root = normpath(root)
        mapper = Mapper(vhost, self.parsed, root)
        if sections is None:
            return _Server(vhost, base, None, (self._main,), mapper)
        index = Index(sections, 1, notes)
        return _Server(vhost, base, index, (self._main, index), mapper)

    def __repr__(self) -> str:
        files = self.parsed.files[0] if self.parsed.files else "<string>"
        return f"<Config {files!r} merge={self.merge!r}>"

    def with_document_root(self, path: str | os.PathLike[str] | None) -> Config:
        """Return a copy of this config whose document root is *path*."""
        return Config(
            self.parsed,
            merge=self.merge,
            document_root=path,
            cache_size=self._cache_size,
        )

    # -- per request ---------------------------------------------------------

    def without_index(self) -> Config:
        """A copy that tests every section on every request (no cache, no
        index pruning): the same results, for benchmarks and debugging."""
        flat = Config(
            self.parsed,
            document_root=self.document_root,
            cache_size=0,
            merge=self.merge,
        )
        for index in [flat._main] + [s.index for s in flat._servers if s.index]:
            index.flatten()
        return flat

    def resolve(self, environ: Mapping[str, Any]) -> Settings:
        """Return the effective settings for the request *environ*."""
        _, _, server, url_path, mapped = self._locate(environ)
        fs_path = None if mapped is None else mapped.path
        settings: Settings = self._lookup(server, url_path, fs_path)
        return settings

    def explain(self, environ: Mapping[str, Any]) -> Explanation:
        """Like :meth:`resolve`, but tell which sections matched and why."""
        host, port, server, url_path, mapped = self._locate(environ)
        fs_path = None if mapped is None else mapped.path
        chosen = self._servers[server]
        entries = match(chosen.indexes, url_path, fs_path)
        return Explanation(
            vhost=chosen.vhost,
            sections=tuple(entry.section for entry in entries),
            settings=_fold(chosen.base, entries, self._replace),
            url_path=url_path,
            fs_path=fs_path,
            host=host,
            port=port,
            mapped=mapped,
        )

    def _locate(
        self, environ: Mapping[str, Any]
    ) -> tuple[str, int | None, int, str, Mapped | None]:
        """``(host, port, server index, URL path, filesystem mapping)``."""
        host, port = request_host(environ)
        server = self._vhosts.choose(host, port) + 1
        url_path = request_path(environ)
        mapped = self._servers[server].mapper.map(url_path, environ)
        return host, port, server, url_path, mapped

    def _settings_for(
        self, server: int, url_path: str, fs_path: str | None
    ) -> Settings:
        chosen = self._servers[server]
        entries = match(chosen.indexes, url_path, fs_path)
        return _fold(chosen.base, entries, self._replace)


def _fold(base: Settings, entries: list[Entry], replace: bool) -> Settings:
    """The matched sections' overrides merged over *base*, in merge order."""
    return merge(base, (entry.section.overrides for entry in entries), replace=replace)


# -- entry points ----------------------------------------------------------------


def parse_config(
    text: str,
    filename: str = "<string>",
    *,
    merge: MergeMode = "field",
    defines: Mapping[str, str] | None = None,
    modules: Collection[str] | None = None,
    document_root: str | os.PathLike[str] | None = None,
) -> Config:
    """Parse Apache-syntax *text* into a :class:`Config`.

    :param filename: the name used in error messages.
    :param merge: ``"field"`` or ``"replace"``; see :class:`Config`.
    :param defines: names defined as with ``httpd -D NAME``.
    :param modules: the modules ``<IfModule>`` sees as loaded (``None``: all).
    :param document_root: overrides every ``DocumentRoot`` directive.
    :raises ConfigError: for any syntax error or bad value.
    """
    parsed = parse.parse_text(text, filename, defines=defines, modules=modules)
    return Config(parsed, merge=merge, document_root=document_root)


def load_config(
    path: str | os.PathLike[str],
    *,
    merge: MergeMode = "field",
    defines: Mapping[str, str] | None = None,
    modules: Collection[str] | None = None,
    document_root: str | os.PathLike[str] | None = None,
) -> Config:
    """Read the configuration file at *path*; see :func:`parse_config`."""
    parsed = parse.parse_file(path, defines=defines, modules=modules)
    return Config(parsed, merge=merge, document_root=document_root)
