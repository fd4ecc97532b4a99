"""Section tags: where each may occur, its arguments, the records it builds.

``<Directory>``, ``<DirectoryMatch>``, ``<Files>``, ``<FilesMatch>``,
``<Location>``, ``<LocationMatch>`` (and the ``~`` forms) become
:class:`~wsgi_reproxy.config.records.Section` records; ``<VirtualHost>`` blocks
become :class:`~wsgi_reproxy.config.records.VirtualHost` records.  A
:class:`Context` says what encloses the line being read; the checks here
mirror httpd's (``<VirtualHost> cannot occur within <Location> section``)::

    tag, kind, regex, pattern = section_pattern("files", ["*.php"], ctx, line, "/")
    # ("Files", "files", False, "*.php")
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

from ..exceptions import ConfigError
from .aliases import MappingBuilder
from .hosts import host_name
from .lexer import Line
from .records import Section, SectionKind, VirtualHost
from .settings import Overrides

# section tag (lower case) -> (canonical tag, kind, regex?)
SECTIONS: dict[str, tuple[str, SectionKind, bool]] = {
    "directory": ("Directory", "directory", False),
    "directorymatch": ("DirectoryMatch", "directory", True),
    "files": ("Files", "files", False),
    "filesmatch": ("FilesMatch", "files", True),
    "location": ("Location", "location", False),
    "locationmatch": ("LocationMatch", "location", True),
}
CANONICAL = {
    "virtualhost": "VirtualHost",
    "ifdefine": "IfDefine",
    "ifmodule": "IfModule",
    **{key: value[0] for key, value in SECTIONS.items()},
}
MAX_NESTING = 64  # sections inside sections; real configs use 3 or 4


@dataclass
class Context:
    """Where the parser is: what encloses the current line."""

    level: str  # "server", "vhost", "directory", "files", "location", "foreign"
    active: bool  # False inside a false <IfDefine>/<IfModule>
    values: dict[str, object] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    tag: str = ""
    depth: int = 0

    def overrides(self) -> Overrides:
        return Overrides(tuple(self.values.items()), tuple(self.origins.items()))


@dataclass
class VHostBuilder:
    """A ``<VirtualHost>`` being read; :meth:`record` freezes it."""

    addresses: tuple[str, ...]
    filename: str
    lineno: int
    names: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    document_root: str | None = None
    mapping: MappingBuilder = field(default_factory=MappingBuilder)

    def add_names(self, key: str, args: list[str]) -> None:
        """Apply ``ServerName`` (*key* ``"servername"``) or ``ServerAlias``."""
        target = self.names if key == "servername" else self.aliases
        if key == "servername":
            target.clear()
            args = args[:1]
        target.extend(host_name(a) for a in args)

    def record(self, inner: Context) -> VirtualHost:
        """The frozen record, with what was read inside the block."""
        return VirtualHost(
            addresses=self.addresses,
            names=tuple(self.names + self.aliases),
            overrides=inner.overrides(),
            document_root=self.document_root,
            sections=tuple(inner.sections),
            filename=self.filename,
            lineno=self.lineno,
            aliases=tuple(self.mapping.aliases),
            userdir=self.mapping.userdir.record(),
        )


def open_virtualhost(line: Line, args: list[str], ctx: Context) -> VHostBuilder:
    """Check a ``<VirtualHost>`` opener and start its record."""
    if ctx.level != "server":
        raise ConfigError(
            f"<VirtualHost> cannot occur within {where(ctx)}",
            line.filename,
            line.lineno,
        )
    if not args:
        raise ConfigError(
            "<VirtualHost> needs at least one address", line.filename, line.lineno
        )
    return VHostBuilder(tuple(args), line.filename, line.lineno)


def section_pattern(
    key: str, args: list[str], ctx: Context, line: Line, root: str
) -> tuple[str, SectionKind, bool, str]:
    """Check a directory, files or location opener (*key* in :data:`SECTIONS`).

    :param root: where a relative ``<Directory>`` path starts.
    :return: ``(tag, kind, regex, pattern)``.
    """
    tag, kind, regex = SECTIONS[key]
    allowed = ctx.level in ("server", "vhost") or (
        kind == "files" and ctx.level == "directory"
    )
    if not allowed:
        raise ConfigError(
            f"<{tag}> cannot occur within {where(ctx)}", line.filename, line.lineno
        )
    if args and args[0] == "~" and not regex:
        regex = True
        args = args[1:]
    if len(args) != 1:
        raise ConfigError(
            f"<{tag}> takes one argument, a path or pattern"
            if args
            else f"<{tag}> directive requires additional arguments",
            line.filename,
            line.lineno,
        )
    pattern = args[0]
    if regex:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"<{tag}> regex {pattern!r} does not compile: {exc}",
                line.filename,
                line.lineno,
            ) from exc
    elif kind == "directory" and not pattern.startswith("/"):
        pattern = os.path.join(root, pattern)
    return tag, kind, regex, pattern


def add_section(sections: list[Section], first_nested: int, section: Section) -> None:
    """Append *section* before the ones nested in it, which start at
    *first_nested* and get it as their parent."""
    # Nested sections were appended while reading the block; they need
    # this section as parent, which only exists now (records are frozen).
    nested = sections[first_nested:]
    del sections[first_nested:]
    sections.append(section)
    for child in nested:
        sections.append(dataclasses.replace(child, parent=section))


def open_name(line: Line) -> str:
    """The tag of a ``<Tag ...>`` line, as written."""
    text = line.text[1:]
    end = 0
    while end < len(text) and text[end] not in " \t>":
        end += 1
    return text[:end]


def where(ctx: Context) -> str:
    return f"<{ctx.tag}> section" if ctx.tag else "this context"
