"""Apache-syntax configuration: logical lines to frozen section records.

The parser reads what httpd 2.4 reads and keeps what matters here:

* ``<Directory>``, ``<DirectoryMatch>``, ``<Files>``, ``<FilesMatch>``,
  ``<Location>``, ``<LocationMatch>`` (and the ``~`` forms) become
  :class:`~wsgi_reproxy.config.records.Section` records; ``<VirtualHost>`` blocks
  become :class:`~wsgi_reproxy.config.records.VirtualHost` records;
* ``Include``/``IncludeOptional`` (globs, alphabetical, relative to
  ``ServerRoot`` or else to the including file, with cycle detection),
  ``Define``/``UnDefine``/``${NAME}``, ``<IfDefine>`` and ``<IfModule>`` are
  applied while reading;
* our directives are validated into typed :class:`Overrides`, so a bad value
  is a :class:`ConfigError` naming ``file:line``;
* every other directive is ignored but remembered (``check --strict`` lists
  them), so a whole ``apache2.conf`` loads.  The contents of sections this
  project does not know (``<Proxy>``, ``<Limit>``, ``<If>``, …) are ignored
  too; one of our directives inside one is ignored with a warning;
* ``Alias`` and its family and ``UserDir`` are recorded
  (:mod:`~wsgi_reproxy.config.aliases`) for the resolver's URL-to-file map.

The pieces live beside this reader: :mod:`~wsgi_reproxy.config.sections` (what
each section tag means and where it may occur), :mod:`~wsgi_reproxy.config.includes`
(``Include``) and :mod:`~wsgi_reproxy.config.conditions` (``Define``,
``<IfDefine>``, ``<IfModule>``).

Example::

    parsed = parse_text("<Location />\\n AllowReproxy on\\n</Location>\\n")
    parsed.sections[0].overrides.values  # (('allow_reproxy', True),)
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

from ..exceptions import ConfigError
from .aliases import MAPPING_DIRECTIVES, MappingBuilder, read_mapping
from .conditions import Conditions
from .directives import DIRECTIVES, store
from .includes import Includes
from .lexer import Line, logical_lines, split_words, substitute
from .records import Directive, Section, VirtualHost
from .sections import (
    CANONICAL,
    MAX_NESTING,
    SECTIONS,
    Context,
    VHostBuilder,
    add_section,
    open_name,
    open_virtualhost,
    section_pattern,
)


class Parser:
    def __init__(
        self, defines: Mapping[str, str] | None, modules: Collection[str] | None
    ) -> None:
        self.conditions = Conditions(defines, modules)
        self.includes = Includes()
        self.server_root: str | None = None
        self.document_root: str | None = None
        self.ignored: list[Directive] = []
        self.warnings: list[str] = []
        self.files: list[str] = []
        self.vhosts: list[VirtualHost] = []
        self.mapping = MappingBuilder()  # the main server's Alias, UserDir
        self.index = 0
        self.allow_on: list[str] = []
        self.has_allow_list = False

    # -- files -----------------------------------------------------------

    def parse(self, text: str, filename: str, base_dir: str, ctx: Context) -> None:
        self.files.append(filename)
        lines = list(logical_lines(text, filename))
        pos = self.block(lines, 0, ctx, None, base_dir)
        if pos < len(lines):  # a stray closing tag ended the block
            line = lines[pos]
            tag = line.text[2:].rstrip(">").strip()
            raise ConfigError(
                f"</{tag}> without matching <{tag}> section", filename, line.lineno
            )

    def include(
        self, pattern: str, optional: bool, line: Line, ctx: Context, base_dir: str
    ) -> None:
        root = self.server_root or base_dir
        for match in self.includes.expand(pattern, optional, line, root):
            with self.includes.entering(match, line) as text:
                self.parse(text, match, os.path.dirname(match), ctx)

    # -- blocks ----------------------------------------------------------

    def block(
        self,
        lines: list[Line],
        pos: int,
        ctx: Context,
        opener: Line | None,
        base_dir: str,
    ) -> int:
        """Read lines until the closing tag of *opener*; return the next index."""
        expected = open_name(opener) if opener else None
        while pos < len(lines):
            line = lines[pos]
            text = line.text
            if ctx.active:
                text, missing = substitute(text, self.conditions.lookup)
                for name in missing:
                    self.warn(line, f"config variable ${{{name}}} is not defined")
            if text.startswith("</"):
                if expected is None:
                    return pos
                seen = text[2:].rstrip(">").strip()
                if seen.lower() != expected.lower():
                    canonical = CANONICAL.get(expected.lower(), expected)
                    raise ConfigError(
                        f"Expected </{canonical}> but saw </{seen}>",
                        line.filename,
                        line.lineno,
                    )
                return pos + 1
            if text.startswith("<"):
                pos = self.section(lines, pos, text, ctx, base_dir)
                continue
            if ctx.active and text.strip():  # "${EMPTY}" alone is no directive
                self.directive(Line(text, line.filename, line.lineno), ctx, base_dir)
            pos += 1
        if opener is not None:
            name = CANONICAL.get(expected.lower(), expected) if expected else ""
            raise ConfigError(
                f"<{name}> was not closed", opener.filename, opener.lineno
            )
        return pos

    def section(
        self, lines: list[Line], pos: int, text: str, ctx: Context, base_dir: str
    ) -> int:
        line = Line(text, lines[pos].filename, lines[pos].lineno)
        name = open_name(line)
        key = name.lower()
        canonical = CANONICAL.get(key, name)
        if not name:
            raise ConfigError(
                f"{text.split()[0]!r} is not a section tag", line.filename, line.lineno
            )
        if ctx.depth >= MAX_NESTING:
            raise ConfigError(
                f"<{canonical}> nested too deeply", line.filename, line.lineno
            )
        if ">" not in text:
            raise ConfigError(
                f"<{canonical}> directive missing closing '>'",
                line.filename,
                line.lineno,
            )
        args = split_words(text[1 + len(name) : text.rindex(">")])
        if key in ("ifdefine", "ifmodule"):
            if len(args) != 1:
                raise ConfigError(
                    f"<{canonical}> takes one argument", line.filename, line.lineno
                )
            inner = Context(
                ctx.level,
                ctx.active and self.conditions.test(key, args[0]),
                ctx.values,
                ctx.origins,
                ctx.sections,
                ctx.tag,
                ctx.depth + 1,
            )
            return self.block(lines, pos + 1, inner, lines[pos], base_dir)
        if key == "virtualhost" and ctx.active:
            return self.virtualhost(lines, pos, line, args, ctx, base_dir)
        if key in SECTIONS and ctx.active:
            return self.dir_section(lines, pos, line, key, args, ctx, base_dir)
        # A section we do not know: check its nesting, apply nothing inside.
        inner = Context("foreign", False, tag=canonical, depth=ctx.depth + 1)
        if ctx.active:
            inner.active, inner.level = True, "foreign"
            self.ignored.append(
                Directive(f"<{name}>", tuple(args), line.filename, line.lineno)
            )
        return self.block(lines, pos + 1, inner, lines[pos], base_dir)

    def virtualhost(
        self,
        lines: list[Line],
        pos: int,
        line: Line,
        args: list[str],
        ctx: Context,
        base_dir: str,
    ) -> int:
        vhost = open_virtualhost(line, args, ctx)
        inner = Context("vhost", True, tag="VirtualHost", depth=ctx.depth + 1)
        self.current_vhost = vhost
        try:
            pos = self.block(lines, pos + 1, inner, lines[pos], base_dir)
        finally:
            self.current_vhost = None
        self.vhosts.append(vhost.record(inner))
        return pos

    def dir_section(
        self,
        lines: list[Line],
        pos: int,
        line: Line,
        key: str,
        args: list[str],
        ctx: Context,
        base_dir: str,
    ) -> int:
        root = self.server_root or base_dir
        tag, kind, regex, pattern = section_pattern(key, args, ctx, line, root)
        inner = Context(kind, True, tag=tag, depth=ctx.depth + 1)
        inner.sections = ctx.sections  # nested <Files> go to the same list
        index = self.next_index()
        first_nested = len(ctx.sections)
        pos = self.block(lines, pos + 1, inner, lines[pos], base_dir)
        section = Section(
            kind=kind,
            tag=tag,
            pattern=pattern,
            regex=regex,
            overrides=inner.overrides(),
            filename=line.filename,
            lineno=line.lineno,
            index=index,
            parent=None,
        )
        add_section(ctx.sections, first_nested, section)
        return pos

    def next_index(self) -> int:
        self.index += 1
        return self.index

    # -- directives ------------------------------------------------------

    def directive(self, line: Line, ctx: Context, base_dir: str) -> None:
        words = split_words(line.text)
        name, args = words[0], words[1:]
        key = name.lower()
        handler = DIRECTIVES.get(key)
        if handler is not None:
            if ctx.level == "foreign":
                self.warn(line, f"{name} inside <{ctx.tag}> is ignored")
                return
            value = handler(args, line, self)
            store(ctx.values, ctx.origins, key, value, line)
            if key == "allowreproxy" and value:
                self.allow_on.append(f"{line.filename}:{line.lineno}")
            self.has_allow_list |= key == "reproxyallowtargets"
            return
        if key in MAPPING_DIRECTIVES:
            vhost = self.current_vhost if ctx.level == "vhost" else None
            into = vhost.mapping if vhost is not None else self.mapping
            root = self.server_root or base_dir
            read_mapping(key, args, line, ctx.level, root, into, self.warn)
            return
        if key in ("include", "includeoptional"):
            if len(args) != 1:
                raise ConfigError(
                    f"{name} takes one argument", line.filename, line.lineno
                )
            self.include(args[0], key == "includeoptional", line, ctx, base_dir)
            return
        if key == "define":
            self.conditions.define(args, line)
            return
        if key == "undefine":
            self.conditions.undefine(args, line)
            return
        if key == "serverroot" and len(args) == 1 and ctx.level == "server":
            self.server_root = os.path.join(base_dir, args[0])
            return
        if (
            key == "documentroot"
            and len(args) == 1
            and ctx.level in ("server", "vhost")
        ):
            root = os.path.join(self.server_root or base_dir, args[0])
            if ctx.level == "vhost" and self.current_vhost is not None:
                self.current_vhost.document_root = root
            else:
                self.document_root = root
            return
        if key in ("servername", "serveralias") and ctx.level == "vhost":
            if self.current_vhost is not None:
                self.current_vhost.add_names(key, args)
            return
        self.ignored.append(Directive(name, tuple(args), line.filename, line.lineno))

    # -- helpers ---------------------------------------------------------

    current_vhost: VHostBuilder | None = None

    def warn(self, line: Line, message: str) -> None:
        self.warnings.append(f"{line.filename}:{line.lineno}: {message}")
