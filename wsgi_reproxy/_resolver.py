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
choice is written down here.

Virtual host
    The request's host is ``HTTP_HOST`` (lower-cased, trailing dot and port
    stripped, ``[v6]`` brackets kept), else ``SERVER_NAME``.  Its port is the
    Host header's port, else the scheme's default (80/443) when a Host header
    without a port was sent, else ``SERVER_PORT``: behind a proxy gunicorn sees
    its own ``SERVER_PORT``, while the Host header still names the port the
    client used, which is what ``<VirtualHost *:443>`` means.  Candidates are
    the virtual hosts with an address whose port is ``*``, missing, or that
    port; the address part is not compared (WSGI does not tell the local
    address, and ``*`` and ``_default_`` are the usual forms).  Of the
    candidates the first whose ``ServerName``/``ServerAlias`` matches the host
    (``*``/``?`` wildcards) wins, else the first candidate, Apache's default
    virtual host rule.  File order decides, not exactness: an earlier
    ``ServerAlias *.example.com`` takes ``files.example.com`` from a later
    ``ServerName files.example.com``, as Apache 2.4.71 does (httpd's
    ``check_hostalias``).  Without candidates only the main server applies.

URL path
    ``SCRIPT_NAME + PATH_INFO`` (``"/"`` when empty), with ``.`` and ``..``
    segments removed as Apache's ``ap_getparents`` does before any section is
    walked, so ``/public/../private`` is matched as ``/private``; for
    matching, runs of ``/`` are merged (``MergeSlashes On``, httpd's default
    since 2.4.39), for regex sections too.

Merge order
    The server's own directives, then the virtual host's, then the matching
    sections: ``<Directory>`` (fewest path components first), then
    ``<DirectoryMatch>``, then ``<Files>``/``<FilesMatch>`` (server level
    first, then those nested in a matched ``<Directory>``), then
    ``<Location>``/``<LocationMatch>``; file order within each group, and in
    each group the main server's sections before the virtual host's.

Filesystem path
    ``DocumentRoot`` joined with the URL path: the ``document_root`` argument
    wins over the virtual host's ``DocumentRoot``, which wins over the main
    server's.  Without a document root, ``SCRIPT_FILENAME`` (mod_wsgi sets it);
    else no ``<Directory>`` or ``<Files>`` section can match.  Nothing is
    looked up on disk: the last segment counts as a directory for
    ``<Directory>`` and as the file name for ``<Files>``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import posixpath
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

from . import _config
from ._records import ParsedConfig, Section, VirtualHost
from ._settings import DEFAULT_SETTINGS, Settings
from .exceptions import ConfigError

MergeMode = Literal["field", "replace"]

#: Default number of ``(virtual host, URL path, filesystem path)`` results
#: kept; a hit skips matching entirely.  Bounded so that clients sending
#: endless distinct paths cost memory only up to this many entries.
DEFAULT_CACHE_SIZE = 1024

_DEFAULT_PORTS = {"http": 80, "https": 443}
_KEY = attrgetter("key")


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
    """

    vhost: VirtualHost | None
    sections: tuple[Section, ...]
    settings: Settings
    url_path: str
    fs_path: str | None
    host: str
    port: int | None


@dataclass(frozen=True, slots=True)
class _Server:
    """The main server or one virtual host, ready to resolve against."""

    vhost: VirtualHost | None
    base: Settings  # main server (and virtual host) overrides applied
    index: Index | None  # the virtual host's own sections
    root: str | None  # normalised document root
    root_prefix: str  # root with a trailing "/"


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
            root = _normpath(root)
        prefix = "" if root is None else root.rstrip("/") + "/"
        index = None if sections is None else Index(sections, 1, notes)
        return _Server(vhost, base, index, root, prefix)

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

    def resolve(self, environ: Mapping[str, Any]) -> Settings:
        """Return the effective settings for the request *environ*."""
        host, port = _request_host(environ)
        server = self._vhosts.choose(host, port) + 1
        url_path = _url_path(environ)
        fs_path = self._fs_path(self._servers[server], url_path, environ)
        settings: Settings = self._lookup(server, url_path, fs_path)
        return settings

    def explain(self, environ: Mapping[str, Any]) -> Explanation:
        """Like :meth:`resolve`, but tell which sections matched and why."""
        host, port = _request_host(environ)
        server = self._vhosts.choose(host, port) + 1
        url_path = _url_path(environ)
        fs_path = self._fs_path(self._servers[server], url_path, environ)
        entries = self._match(server, url_path, fs_path)
        return Explanation(
            vhost=self._servers[server].vhost,
            sections=tuple(entry.section for entry in entries),
            settings=_fold(self._servers[server].base, entries, self._replace),
            url_path=url_path,
            fs_path=fs_path,
            host=host,
            port=port,
        )

    def _settings_for(
        self, server: int, url_path: str, fs_path: str | None
    ) -> Settings:
        entries = self._match(server, url_path, fs_path)
        return _fold(self._servers[server].base, entries, self._replace)

    def _match(self, server: int, url_path: str, fs_path: str | None) -> list[Entry]:
        """The entries matching the request, sorted into merge order."""
        indexes = [self._main]
        own = self._servers[server].index
        if own is not None:
            indexes.append(own)
        merged = merge_slashes(url_path)
        matched: list[Entry] = []
        for index in indexes:
            index.match_locations(merged, matched)
        if fs_path is not None:
            name = fs_path[fs_path.rfind("/") + 1 :]
            for index in indexes:
                index.match_directories(fs_path, matched)
            parents = {id(entry) for entry in matched}
            for index in indexes:
                index.match_files(name, parents, matched)
        matched.sort(key=_KEY)
        return matched

    def _fs_path(
        self, server: _Server, url_path: str, environ: Mapping[str, Any]
    ) -> str | None:
        if server.root is not None:
            relative = url_path if url_path.startswith("/") else "/" + url_path
            path = _normpath(server.root + relative)
            # The URL path has no ".." left, but stay inside the root whatever
            # a future change does to it: an escape maps to the root itself.
            if path != server.root and not path.startswith(server.root_prefix):
                path = server.root  # pragma: no cover - unreachable today
            if relative.endswith("/") and not path.endswith("/"):
                path += "/"
            return path
        script = environ.get("SCRIPT_FILENAME")
        if isinstance(script, str) and script:
            return _normpath(script)
        return None


def _fold(base: Settings, entries: list[Entry], replace: bool) -> Settings:
    """``Overrides.apply`` over *entries* in turn, building one Settings.

    The same result as applying each section's overrides in a loop (the
    tests check this), at a fraction of the cost: ``dataclasses.replace`` is
    the most expensive step of a resolve, so it runs once.
    """
    values: dict[str, object] = {}
    origins: dict[str, str] | None = None
    for entry in entries:
        overrides = entry.section.overrides
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
    return dataclasses.replace(base, **values, origins=tuple(origins.items()))  # type: ignore[arg-type]


# -- environ helpers -----------------------------------------------------------


def _request_host(environ: Mapping[str, Any]) -> tuple[str, int | None]:
    """The ``(host, port)`` a request addressed; see the module docstring."""
    header = environ.get("HTTP_HOST")
    if isinstance(header, str) and header.strip():
        host, port_text = split_host_port(header.strip().lower())
        port = _port(port_text)
        if port is None:
            port = _DEFAULT_PORTS.get(str(environ.get("wsgi.url_scheme", "http")))
        if port is None:
            port = _port(str(environ.get("SERVER_PORT", "")))
    else:
        host = str(environ.get("SERVER_NAME", "")).lower()
        port = _port(str(environ.get("SERVER_PORT", "")))
    # "example.com." names the same host as "example.com" (httpd fix_hostname)
    return host.rstrip("."), port


def _port(text: str) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= 5:
        return int(text)
    return None


def _url_path(environ: Mapping[str, Any]) -> str:
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    if not path:
        return "/"
    if "." in path:
        return _remove_dot_segments(path)
    return path


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, which is what httpd's ``ap_getparents`` implements.

    ``/a/b/../c`` -> ``/a/c``, ``/a/./`` -> ``/a/``, ``/..`` -> ``/``.
    """
    absolute = path.startswith("/")
    segments = path.split("/")[1:] if absolute else path.split("/")
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and out:
                out.pop()
            if i == last:
                out.append("")  # "/a/.." names the directory "/a/"
        else:
            out.append(segment)
    return ("/" if absolute else "") + "/".join(out)


def _normpath(path: str) -> str:
    path = posixpath.normpath(path)
    # POSIX lets normpath keep exactly two leading slashes; we want one.
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path


# -- matching ------------------------------------------------------------------
#
# Sort keys give Apache's merge order (httpd docs, "How the sections are
# merged"; core.c ap_core_reorder_directories and merge_core_dir_configs):
#   (0, components, origin, index)  <Directory>, fewest path components first
#   (1, origin, index)              <DirectoryMatch>, <Directory ~>
#   (2, 0, origin, index)           <Files>/<FilesMatch> at server level
#   (2, 1, *parent key, index)      <Files> nested in a matched <Directory>
#   (3, origin, index)              <Location>/<LocationMatch>, <Location ~>
# origin is 0 for the main server, 1 for the virtual host: "sections inside
# <VirtualHost> sections are applied after the corresponding sections outside".
# Nested <Files> come after server-level ones, in their parents' merge order,
# because merge_core_dir_configs appends each merged directory's sec_file
# array to the server's.

_MERGE_SLASHES = re.compile(r"//+")


def merge_slashes(path: str) -> str:
    """Collapse runs of ``/``, as httpd does before matching (``MergeSlashes``)."""
    return _MERGE_SLASHES.sub("/", path) if "//" in path else path


def split_host_port(text: str) -> tuple[str, str]:
    """``"[::1]:80"`` -> ``("[::1]", "80")``; ``"a.b"`` -> ``("a.b", "")``."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return text, ""
        rest = text[end + 1 :]
        return text[: end + 1], rest[1:] if rest.startswith(":") else ""
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, ""


def _is_glob(pattern: str) -> bool:
    """APR's ``apr_fnmatch_test``: ``*``, ``?`` or a closed ``[...]``."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in "*?":
            return True
        if c == "\\":
            i += 1
        elif c == "[" and "]" in pattern[i + 1 :]:
            return True
        i += 1
    return False


def _glob_regex(pattern: str) -> str:
    """Translate an ``apr_fnmatch(..., APR_FNM_PATHNAME)`` pattern to a regex.

    Wildcards never match ``/`` (``*`` -> ``[^/]*``, ``?`` -> ``[^/]``,
    classes exclude ``/``); ``\\x`` is a literal ``x``.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            negate = pattern[i : i + 1] in ("!", "^")
            start = i + 1 if negate else i
            # a "]" right after "[" or "[!" is a member, not the end
            first = start + 1 if pattern[start : start + 1] == "]" else start
            end = pattern.find("]", first)
            if end < 0:
                out.append(re.escape(c))
                continue
            members = "".join(
                "-" if ch == "-" and 0 < k < end - start - 1 else re.escape(ch)
                for k, ch in enumerate(pattern[start:end])
            )
            out.append(f"[^/{members}]" if negate else f"(?!/)[{members}]")
            i = end + 1
        else:
            out.append(re.escape(c))
    return "".join(out)


# Characters that stand for themselves in a regex, and the escapes of
# punctuation that do; enough for the anchored paths real configs use.
_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-~%,;=@!:'&\""
)
_ESCAPED = frozenset(".-/_~\\^$*+?()[]{}|%&,;:=@!#'\" ")


def _regex_prefix(regex: str) -> str:
    """Literal text every match of ``^``-anchored *regex* starts with.

    ``"^/files/(.*)\\.jpg$"`` -> ``"/files/"``.  Returns ``""`` when unsure:
    no anchor, an inline flag, a top-level ``|``; the index then falls back
    to testing the section on every request, which is always correct.
    """
    if not regex.startswith("^") or _has_top_level_bar(regex):
        return ""
    out: list[str] = []
    i, n = 1, len(regex)
    while i < n:
        c = regex[i]
        if c in _PLAIN:
            literal, step = c, 1
        elif c == "\\" and i + 1 < n and regex[i + 1] in _ESCAPED:
            literal, step = regex[i + 1], 2
        else:
            break
        following = regex[i + step : i + step + 1]
        if following in ("?", "*", "{"):  # this character may be absent
            break
        out.append(literal)
        if following == "+":
            break
        i += step
    return "".join(out)


def _has_top_level_bar(regex: str) -> bool:
    depth, i, n, in_class = 0, 0, len(regex), False
    while i < n:
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if regex[i + 1 : i + 2] == "^":
                i += 1
            if regex[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth <= 0:
            return True
        i += 1
    return False


def _segments(prefix: str) -> list[str]:
    """The complete path segments of a literal *prefix* (``"/a/b/c"`` -> a, b)."""
    if not prefix.startswith("/"):
        return []
    return [s for s in prefix.split("/")[1:-1] if s]


def _literal_segments(pattern: str) -> list[str]:
    """The leading segments of a glob *pattern* that hold no wildcard."""
    out: list[str] = []
    for segment in _segments(pattern + "/"):
        if _is_glob(segment) or "\\" in segment:
            break
        out.append(segment)
    return out


def _extension(text: str) -> str:
    """``"/a/b.tar.gz"`` -> ``".gz"``; ``""`` when the last segment has no dot.

    A final newline is ignored: a regex ``$`` also matches before one.
    """
    if text.endswith("\n"):
        text = text[:-1]
    dot = text.rfind(".")
    return text[dot:] if dot > text.rfind("/") else ""


def _key_extension(tail: str) -> str:
    """The :func:`_extension` every subject ending in literal *tail* has."""
    dot = tail.rfind(".")
    return tail[dot:] if dot >= 0 and "/" not in tail[dot:] else ""


def _regex_extension(regex: str) -> str:
    """``"\\.php$"`` -> ``".php"``: the extension a ``$``-anchored match ends in.

    Returns ``""`` when the regex does not end in a literal extension before
    an unescaped ``$``, or may not (inline flags, a top-level ``|``).
    """
    if not regex.endswith("$") or regex.startswith("(?") or _has_top_level_bar(regex):
        return ""
    tail: list[str] = []
    i = len(regex) - 1
    if _escaped(regex, i):
        return ""
    i -= 1
    while i >= 0:
        c = regex[i]
        if _escaped(regex, i):
            if c not in _ESCAPED:
                break
            tail.append(c)
            i -= 2
        elif c in _PLAIN:
            tail.append(c)
            i -= 1
        else:
            break
    return _key_extension("".join(reversed(tail)))


def _escaped(text: str, i: int) -> bool:
    """Whether ``text[i]`` follows an odd number of backslashes."""
    count = 0
    while i - count - 1 >= 0 and text[i - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _glob_extension(pattern: str) -> str:
    """``"*.php"`` -> ``".php"``: the literal extension a glob ends in."""
    cut = max(pattern.rfind(c) for c in "*?]\\")
    return _key_extension(pattern[cut + 1 :])


class Entry:
    """One section, compiled: how to test it and where it sorts."""

    __slots__ = ("key", "parent", "regex", "section", "test")

    def __init__(
        self,
        section: Section,
        key: tuple[int, ...],
        test: Callable[[str], object],
        parent: Entry | None = None,
    ) -> None:
        self.section = section
        self.key = key
        self.test = test
        self.regex = section.regex
        self.parent = parent


class _Node:
    """A trie node: the entries hung at one literal path prefix."""

    __slots__ = ("children", "entries")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entries: list[Entry] = []

    def add(self, segments: list[str], entry: Entry) -> None:
        node = self
        for segment in segments:
            node = node.children.setdefault(segment, _Node())
        node.entries.append(entry)

    def candidates(self, path: str) -> list[Entry]:
        """Entries hung at every prefix of absolute *path*, shortest first."""
        found = list(self.entries)
        if path.startswith("/"):
            node = self
            for segment in path[1:].split("/"):
                child = node.children.get(segment)
                if child is None:
                    break
                node = child
                found += node.entries
        return found


def _compile(section: Section, regex: str) -> re.Pattern[str]:
    try:
        with warnings.catch_warnings():
            # FutureWarning "possible nested set" is the parser's to report
            warnings.simplefilter("ignore")
            return re.compile(regex)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ConfigError(
            f"{section.describe()}: pattern does not compile: {exc}",
            section.filename,
            section.lineno,
        ) from exc


def _prefix_test(prefix: str) -> Callable[[str], bool]:
    """Plain ``<Location>``: httpd's ``strncmp`` plus the slash rule."""
    size = len(prefix)
    if not prefix or prefix.endswith("/"):
        return lambda path: path.startswith(prefix)
    return lambda path: (
        path.startswith(prefix) and (len(path) == size or path[size] == "/")
    )


def _directory_test(directory: str) -> Callable[[str], bool]:
    """Plain ``<Directory>``: itself and below, at a component boundary."""
    below = directory.rstrip("/") + "/"
    return lambda path: path == directory or path.startswith(below)


class Index:
    """The sections of one server (main or a virtual host), indexed.

    Plain ``<Location>``/``<Directory>`` sections hang off a trie of path
    segments at their own path; wildcard and anchored regex sections at the
    node of their literal prefix's complete segments.  Of the rest, those
    that can only match one extension (``<Files *.php>``,
    ``<LocationMatch "\\.jpg$">``) are filed under it; what remains is tested
    on every request.  Every candidate is still tested: the index only prunes.
    """

    def __init__(self, sections: tuple[Section, ...], origin: int, notes: list[str]):
        self.locations = _Node()
        self.directories = _Node()
        self.locations_by_ext: dict[str, list[Entry]] = {}
        self.files_by_name: dict[str, list[Entry]] = {}
        self.files_by_ext: dict[str, list[Entry]] = {}
        self.files_other: list[Entry] = []
        compiled: dict[int, Entry] = {}
        kinds = {"directory": 0, "location": 1, "files": 2}  # parents first
        for section in sorted(sections, key=lambda s: (kinds[s.kind], s.index)):
            if section.kind == "location":
                entry = self._location(section, origin, notes)
            elif section.kind == "directory":
                entry = self._directory(section, origin)
            else:
                parent = None
                if section.parent is not None:
                    parent = compiled.get(id(section.parent))
                    if parent is None:  # pragma: no cover - the parser links them
                        continue
                entry = self._files(section, origin, parent)
            compiled[id(section)] = entry

    def _location(self, section: Section, origin: int, notes: list[str]) -> Entry:
        key = (3, origin, section.index)
        if section.regex:
            rx = _compile(section, section.pattern)
            entry = Entry(section, key, rx.search)
            segments = _segments(_regex_prefix(section.pattern))
            self._hang(entry, segments, _regex_extension(section.pattern))
            return entry
        pattern = merge_slashes(section.pattern)
        if _is_glob(pattern):
            rx = _compile(section, _glob_regex(pattern) + r"\Z")
            entry = Entry(section, key, rx.match)
            segments = _literal_segments(pattern)
            self._hang(entry, segments, _glob_extension(pattern))
            return entry
        if not pattern.startswith("/"):
            notes.append(
                f"{section.where}: {section.describe()} does not start with '/' "
                "and can never match a URL path"
            )
        entry = Entry(section, key, _prefix_test(pattern))
        self.locations.add(_segments(pattern + "/"), entry)
        return entry

    def _hang(self, entry: Entry, segments: list[str], extension: str) -> None:
        if extension and not segments:
            self.locations_by_ext.setdefault(extension, []).append(entry)
        else:
            self.locations.add(segments, entry)

    def _directory(self, section: Section, origin: int) -> Entry:
        if section.regex:
            rx = _compile(section, section.pattern)
            entry = Entry(section, (1, origin, section.index), rx.search)
            self.directories.add(_segments(_regex_prefix(section.pattern)), entry)
            return entry
        # <Directory /srv/www/> is <Directory /srv/www>
        pattern = merge_slashes(section.pattern).rstrip("/") or "/"
        components = len(_segments(pattern + "/"))
        key = (0, components, origin, section.index)
        if _is_glob(pattern):
            rx = _compile(section, _glob_regex(pattern) + r"(?:/|\Z)")
            entry = Entry(section, key, rx.match)
            self.directories.add(_literal_segments(pattern), entry)
        else:
            entry = Entry(section, key, _directory_test(pattern))
            self.directories.add(_segments(pattern + "/"), entry)
        return entry

    def _files(self, section: Section, origin: int, parent: Entry | None) -> Entry:
        if parent is None:
            key: tuple[int, ...] = (2, 0, origin, section.index)
        else:
            key = (2, 1, *parent.key, section.index)
        pattern = section.pattern
        if section.regex:
            entry = Entry(section, key, _compile(section, pattern).search, parent)
            extension = _regex_extension(pattern)
        elif _is_glob(pattern) or "\\" in pattern:
            rx = _compile(section, _glob_regex(pattern) + r"\Z")
            entry = Entry(section, key, rx.match, parent)
            extension = _glob_extension(pattern)
        else:
            entry = Entry(section, key, pattern.__eq__, parent)
            self.files_by_name.setdefault(pattern, []).append(entry)
            return entry
        if extension:
            self.files_by_ext.setdefault(extension, []).append(entry)
        else:
            self.files_other.append(entry)
        return entry

    def match_locations(self, path: str, out: list[Entry]) -> None:
        """Every kind sees the slash-merged path, regexes included.

        httpd 2.4.39 and later merge slashes in the URL before any section is
        walked (``MergeSlashes On``, the default): Apache 2.4.71 applies
        ``<LocationMatch "^/a/b">`` to ``//a/b``.  Older docs say regexes see
        the raw path; matching the current server also means a ``//`` cannot
        step around a regex section that turns reproxying off.
        """
        candidates = self.locations.candidates(path)
        if self.locations_by_ext:
            candidates += self.locations_by_ext.get(_extension(path), ())
        for entry in candidates:
            if entry.test(path):
                out.append(entry)

    def match_directories(self, path: str, out: list[Entry]) -> None:
        """Regexes see the whole *path*, as written: httpd's ``r->filename``.

        Apache 2.4.71 applies ``<DirectoryMatch "^/www/a/b/c\\.txt$">`` to
        ``/a/b/c.txt``, and ``"^/www/a/b/$"`` only to ``/a/b/``.  The others
        see *path* without a trailing slash: ``/srv/www/`` is the directory
        ``/srv/www``, which ``<Directory /srv/www/*>`` does not cover.
        """
        trimmed = path[:-1] if len(path) > 1 and path.endswith("/") else path
        for entry in self.directories.candidates(trimmed):
            if entry.test(path if entry.regex else trimmed):
                out.append(entry)

    def match_files(self, name: str, parents: set[int], out: list[Entry]) -> None:
        """A nested ``<Files>`` applies only where its parent matched."""
        by_ext = (
            self.files_by_ext.get(_extension(name), ()) if self.files_by_ext else ()
        )
        for entries in (self.files_by_name.get(name, ()), by_ext, self.files_other):
            for entry in entries:
                if (entry.parent is None or id(entry.parent) in parents) and entry.test(
                    name
                ):
                    out.append(entry)


class VirtualHosts:
    """Chooses the virtual host for a ``(host, port)``; see the module docstring."""

    def __init__(self, vhosts: tuple[VirtualHost, ...], notes: list[str]) -> None:
        ports: list[frozenset[int] | None] = []  # None: any port
        for vhost in vhosts:
            numbers: set[int] = set()
            any_port = False
            for address in vhost.addresses:
                text = split_host_port(address)[1]
                if text in ("", "*"):
                    any_port = True
                elif (number := _port(text)) is not None:
                    numbers.add(number)
                else:
                    notes.append(f"{vhost.where}: bad port in address {address!r}")
            ports.append(None if any_port else frozenset(numbers))
        self._vhosts = vhosts
        every = {number for p in ports if p is not None for number in p}
        self._by_port = {
            port: _NameTable(
                vhosts, [i for i, p in enumerate(ports) if p is None or port in p]
            )
            for port in every
        }
        self._other_port = _NameTable(
            vhosts, [i for i, p in enumerate(ports) if p is None]
        )
        self._any_port = _NameTable(vhosts, list(range(len(vhosts))))

    def choose(self, host: str, port: int | None) -> int:
        """The index of the virtual host serving the request, -1 for none."""
        if port is None:
            table = self._any_port
        else:
            table = self._by_port.get(port, self._other_port)
        return table.choose(host)


class _NameTable:
    """Name lookup among the virtual hosts listening on one port."""

    def __init__(self, vhosts: tuple[VirtualHost, ...], candidates: list[int]) -> None:
        self.default = candidates[0] if candidates else -1
        self.exact: dict[str, int] = {}
        self.wild: list[tuple[int, re.Pattern[str]]] = []
        for i in candidates:
            for name in vhosts[i].names:
                if "*" in name or "?" in name:
                    # ServerAlias wildcards: only * and ? (ap_strcasecmp_match)
                    regex = re.escape(name).replace(r"\*", ".*").replace(r"\?", ".")
                    self.wild.append((i, re.compile(regex + r"\Z", re.IGNORECASE)))
                else:
                    self.exact.setdefault(name.lower(), i)

    def choose(self, host: str) -> int:
        found = self.exact.get(host, -1)
        for i, rx in self.wild:
            if found >= 0 and i > found:
                break
            if rx.match(host):
                return i
        return found if found >= 0 else self.default


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
    parsed = _config.parse_text(text, filename, defines=defines, modules=modules)
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
    parsed = _config.parse_file(path, defines=defines, modules=modules)
    return Config(parsed, merge=merge, document_root=document_root)
