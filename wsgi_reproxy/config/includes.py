"""``Include`` and ``IncludeOptional``: which files, in what order, no cycles.

A path is relative to ``ServerRoot`` or else to the including file's
directory.  A directory includes every file below it; wildcards (in any
component) are expanded in alphabetical order.  :class:`Includes` keeps the
stack of files being read, so a file that includes itself (directly or
not) is a :class:`ConfigError` instead of a recursion::

    includes = Includes()
    for name in includes.expand("conf.d/*.conf", False, line, root):
        with includes.entering(name, line) as text:
            ...  # parse text; a nested Include sees this file on the stack
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterator

from ..exceptions import ConfigError
from .lexer import Line
from .patterns import is_glob

_MAX_INCLUDE_DEPTH = 128  # httpd's AP_MAX_INCLUDE_DEPTH


def expand_include(path: str) -> list[str]:
    """Files an ``Include`` path names, httpd's way.

    A directory includes every file below it.  Wildcards may stand in any
    component and are expanded in alphabetical order; as in httpd
    (``apr_fnmatch`` with ``APR_FNM_PERIOD``) a leading dot must be matched
    by a dot, so ``*.conf`` skips ``.hidden.conf``.  Whether a path holds a
    wildcard is httpd's test, ``apr_fnmatch_test``
    (:func:`~wsgi_reproxy.config.patterns.is_glob`): ``\\*`` is no wildcard, nor
    is a ``[`` without a closing ``]``.
    """
    if not is_glob(path):
        if os.path.isdir(path):
            return walk_files(path)
        return [path] if os.path.exists(path) else []
    results: list[str] = []
    for match in _glob(path):
        results.extend(walk_files(match) if os.path.isdir(match) else [match])
    return results


def _glob(path: str) -> list[str]:
    """The existing paths *path* matches, one component at a time; a
    wildcard before the last component matches directories only."""
    head, tail = os.path.split(path)
    parents = _glob(head) if is_glob(head) else [head]
    found: list[str] = []
    for parent in parents:
        if not os.path.isdir(parent):
            continue
        if not is_glob(tail):
            if os.path.exists(os.path.join(parent, tail)):
                found.append(os.path.join(parent, tail))
            continue
        for name in sorted(os.listdir(parent)):
            if name.startswith(".") and not tail.startswith("."):
                continue  # APR_FNM_PERIOD
            if fnmatch.fnmatchcase(name, tail):
                found.append(os.path.join(parent, name))
    return found


def walk_files(directory: str) -> list[str]:
    files: list[str] = []
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        files.extend(walk_files(full) if os.path.isdir(full) else [full])
    return files


class Includes:
    """The real paths of the files being read, outermost first."""

    def __init__(self) -> None:
        self.stack: list[str] = []

    def expand(self, pattern: str, optional: bool, line: Line, root: str) -> list[str]:
        """The files ``Include`` *pattern* on *line* names, relative to *root*.

        :raises ConfigError: when nothing matches and *optional* is false, or
            a directory cannot be read.
        """
        path = os.path.join(root, pattern)
        try:
            matches = expand_include(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read {path!r}: {exc}", line.filename, line.lineno
            ) from exc
        if not matches and not optional:
            what = "wildcard" if is_glob(pattern) else "file"
            raise ConfigError(
                f"Include: no {what} matches {path!r}", line.filename, line.lineno
            )
        return matches

    @contextlib.contextmanager
    def entering(self, filename: str, line: Line) -> Iterator[str]:
        """Read *filename* (included on *line*) and keep it on the stack while
        the caller parses the text this yields.

        :raises ConfigError: on a cycle, nesting deeper than httpd allows, or
            a file that cannot be read.
        """
        real = os.path.realpath(filename)
        if real in self.stack:
            chain = " -> ".join([*self.stack, real])
            raise ConfigError(f"Include cycle: {chain}", line.filename, line.lineno)
        if len(self.stack) >= _MAX_INCLUDE_DEPTH:
            raise ConfigError("Include nested too deeply", line.filename, line.lineno)
        try:
            with open(filename, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read {filename!r}: {exc}", line.filename, line.lineno
            ) from exc
        self.stack.append(real)
        try:
            yield text
        finally:
            self.stack.pop()
