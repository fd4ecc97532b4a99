"""``check``'s question: can a ``<Directory>`` ever apply?

A ``<Directory>`` holding our directives that no ``DocumentRoot``, alias or
``UserDir`` of the config can reach never applies: usually a path typed
differently in two places (``Alias /downloads /srv/files`` and
``<Directory /srv/file>``).  A main-server section is checked against every
server's map, a virtual host's against its own.  Regex sections are not
judged, and a config that maps nothing (a snippet relying on mod_wsgi's
``SCRIPT_FILENAME`` or the ``document_root`` argument) is not judged either::

    notes = unreachable(parsed, [(None, mapper), (vhost, vhost_mapper)])
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from ..config.patterns import is_glob
from ..config.records import ParsedConfig, Section, VirtualHost
from .aliases import HOME, Mapper


def mapped_roots(mapper: Mapper) -> list[str]:
    """The paths *mapper* can map a URL to or below, as globs (``check``)."""
    roots = [] if mapper.root is None else [mapper.root]
    for rule in mapper.rules:
        target = rule.alias.target
        if rule.regex is not None and "$" in target:
            target = target[: target.index("$")].rpartition("/")[0] or "/"
        roots.append(target)
    for entry in mapper.userdir.paths or () if mapper.userdir else ():
        if "*" in entry:
            roots.append(entry)
        elif entry.startswith("/"):
            roots.append(entry + "/*")
        else:
            roots.append(f"{HOME}/*/{entry}")
    return roots


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _compatible(a: str, b: str) -> bool:
    if is_glob(a) and is_glob(b):
        return True  # two patterns: assume some name fits both
    return a == b or fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)


def reaches(root: str, directory: str) -> bool:
    """Whether some path at or below *root* is at or below *directory*."""
    pairs = zip(_segments(root), _segments(directory), strict=False)
    return all(_compatible(r, d) for r, d in pairs)


def _judge(sections: Iterable[Section], roots: list[str], notes: list[str]) -> None:
    if not roots:
        return
    for section in sections:
        if section.kind != "directory" or section.regex:
            continue
        if not section.overrides.values:
            continue
        if not any(reaches(root, section.pattern) for root in roots):
            notes.append(
                f"{section.where}: {section.describe()} is reached by no "
                "DocumentRoot, Alias or UserDir of this config: its "
                "directives never apply"
            )


def unreachable(
    parsed: ParsedConfig, mappers: list[tuple[VirtualHost | None, Mapper]]
) -> list[str]:
    """Warnings for the ``<Directory>`` sections no mapping reaches.

    :param mappers: each server (``None``: the main one) with its map.
    """
    notes: list[str] = []
    every = [root for _, mapper in mappers for root in mapped_roots(mapper)]
    _judge(parsed.sections, every, notes)
    for vhost, mapper in mappers:
        if vhost is not None:
            _judge(vhost.sections, mapped_roots(mapper), notes)
    return notes
