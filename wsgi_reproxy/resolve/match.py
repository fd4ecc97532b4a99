"""Which sections match a request, in Apache's merge order.

Usage::

    from wsgi_reproxy.resolve.match import Index, match

    indexes = (Index(parsed.sections, 0, notes),)  # once per server, at start-up
    entries = match(indexes, "/downloads/42", "/srv/www/downloads/42")
    [entry.section for entry in entries]           # in the order they merge

All the work is done by :class:`Index`, once: each section's pattern is
compiled into a test, given its sort key and filed where a request can find
it in a few dictionary lookups.  Which request path each kind of section
sees is written down on the ``match_*`` methods.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from operator import attrgetter

from ..config.patterns import (
    glob_extension,
    glob_regex,
    is_glob,
    literal_segments,
    path_extension,
    path_segments,
    regex_extension,
    regex_prefix,
)
from ..config.records import Section
from ..exceptions import ConfigError
from .paths import merge_slashes

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

_KEY = attrgetter("key")


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

    def flatten(self) -> None:
        """Move every entry to the root, so each request tests every section.

        Same results, no pruning: the baseline ``benchmarks/resolver.py``
        measures the index against.
        """
        for root in (self.locations, self.directories):
            todo, everything = list(root.children.values()), list(root.entries)
            while todo:
                node = todo.pop()
                everything += node.entries
                todo += node.children.values()
            root.entries, root.children = everything, {}
        self.locations.entries += [
            e for es in self.locations_by_ext.values() for e in es
        ]
        self.files_other += [
            e
            for by in (self.files_by_name, self.files_by_ext)
            for es in by.values()
            for e in es
        ]
        self.locations_by_ext, self.files_by_name, self.files_by_ext = {}, {}, {}

    def _location(self, section: Section, origin: int, notes: list[str]) -> Entry:
        key = (3, origin, section.index)
        if section.regex:
            rx = _compile(section, section.pattern)
            entry = Entry(section, key, rx.search)
            segments = path_segments(regex_prefix(section.pattern))
            self._hang(entry, segments, regex_extension(section.pattern))
            return entry
        pattern = merge_slashes(section.pattern)
        if is_glob(pattern):
            rx = _compile(section, glob_regex(pattern) + r"\Z")
            entry = Entry(section, key, rx.match)
            segments = literal_segments(pattern)
            self._hang(entry, segments, glob_extension(pattern))
            return entry
        if not pattern.startswith("/"):
            notes.append(
                f"{section.where}: {section.describe()} does not start with '/' "
                "and can never match a URL path"
            )
        entry = Entry(section, key, _prefix_test(pattern))
        self.locations.add(path_segments(pattern + "/"), entry)
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
            self.directories.add(path_segments(regex_prefix(section.pattern)), entry)
            return entry
        # <Directory /srv/www/> is <Directory /srv/www>
        pattern = merge_slashes(section.pattern).rstrip("/") or "/"
        components = len(path_segments(pattern + "/"))
        key = (0, components, origin, section.index)
        if is_glob(pattern):
            rx = _compile(section, glob_regex(pattern) + r"(?:/|\Z)")
            entry = Entry(section, key, rx.match)
            self.directories.add(literal_segments(pattern), entry)
        else:
            entry = Entry(section, key, _directory_test(pattern))
            self.directories.add(path_segments(pattern + "/"), entry)
        return entry

    def _files(self, section: Section, origin: int, parent: Entry | None) -> Entry:
        if parent is None:
            key: tuple[int, ...] = (2, 0, origin, section.index)
        else:
            key = (2, 1, *parent.key, section.index)
        pattern = section.pattern
        if section.regex:
            entry = Entry(section, key, _compile(section, pattern).search, parent)
            extension = regex_extension(pattern)
        elif is_glob(pattern) or "\\" in pattern:
            rx = _compile(section, glob_regex(pattern) + r"\Z")
            entry = Entry(section, key, rx.match, parent)
            extension = glob_extension(pattern)
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
            candidates += self.locations_by_ext.get(path_extension(path), ())
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
            self.files_by_ext.get(path_extension(name), ()) if self.files_by_ext else ()
        )
        for entries in (self.files_by_name.get(name, ()), by_ext, self.files_other):
            for entry in entries:
                if (entry.parent is None or id(entry.parent) in parents) and entry.test(
                    name
                ):
                    out.append(entry)


def match(indexes: Sequence[Index], url_path: str, fs_path: str | None) -> list[Entry]:
    """The entries matching the request, sorted into merge order.

    :param indexes: the main server's index, then the virtual host's if any.
    :param url_path: the URL path, dot segments removed.
    :param fs_path: the filesystem path, or ``None`` when there is none.
    """
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
