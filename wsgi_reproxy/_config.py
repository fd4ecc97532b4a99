"""Apache-syntax configuration: logical lines to frozen section records.

The parser reads what httpd 2.4 reads and keeps what matters here:

* ``<Directory>``, ``<DirectoryMatch>``, ``<Files>``, ``<FilesMatch>``,
  ``<Location>``, ``<LocationMatch>`` (and the ``~`` forms) become
  :class:`~wsgi_reproxy._records.Section` records; ``<VirtualHost>`` blocks
  become :class:`~wsgi_reproxy._records.VirtualHost` records;
* ``Include``/``IncludeOptional`` (globs, alphabetical, relative to
  ``ServerRoot`` or else to the including file, with cycle detection),
  ``Define``/``UnDefine``/``${NAME}``, ``<IfDefine>`` and ``<IfModule>`` are
  applied while reading;
* our directives are validated into typed :class:`Overrides`, so a bad value
  is a :class:`ConfigError` naming ``file:line``;
* every other directive is ignored but remembered (``check --strict`` lists
  them), so a whole ``apache2.conf`` loads.  The contents of sections this
  project does not know (``<Proxy>``, ``<Limit>``, ``<If>``, …) are ignored
  too; one of our directives inside one is ignored with a warning.

Example::

    parsed = parse_text("<Location />\\n AllowReproxy on\\n</Location>\\n")
    parsed.sections[0].overrides.values  # (('allow_reproxy', True),)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ._directives import DIRECTIVES, expand_include, has_glob, store
from ._lexer import Line, logical_lines, split_words, substitute
from ._records import Directive, ParsedConfig, Section, SectionKind, VirtualHost
from ._settings import Overrides
from .exceptions import ConfigError

#: ``<IfModule>`` names that are always loaded: we are mod_reproxy.
OUR_MODULES = frozenset({"mod_reproxy.c", "reproxy_module", "mod_reproxy"})

# section tag (lower case) -> (canonical tag, kind, regex?)
_SECTIONS: dict[str, tuple[str, SectionKind, bool]] = {
    "directory": ("Directory", "directory", False),
    "directorymatch": ("DirectoryMatch", "directory", True),
    "files": ("Files", "files", False),
    "filesmatch": ("FilesMatch", "files", True),
    "location": ("Location", "location", False),
    "locationmatch": ("LocationMatch", "location", True),
}
_CANONICAL = {
    "virtualhost": "VirtualHost",
    "ifdefine": "IfDefine",
    "ifmodule": "IfModule",
    **{key: value[0] for key, value in _SECTIONS.items()},
}
_MAX_INCLUDE_DEPTH = 128  # httpd's AP_MAX_INCLUDE_DEPTH
_MAX_NESTING = 64  # sections inside sections; real configs use 3 or 4


@dataclass
class _Context:
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
class _VHostBuilder:
    addresses: tuple[str, ...]
    filename: str
    lineno: int
    names: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    document_root: str | None = None


class _Parser:
    def __init__(
        self, defines: Mapping[str, str] | None, modules: Collection[str] | None
    ) -> None:
        self.defines: dict[str, str] = dict(defines or {})
        self.modules = None if modules is None else {_module_key(m) for m in modules}
        self.server_root: str | None = None
        self.document_root: str | None = None
        self.ignored: list[Directive] = []
        self.warnings: list[str] = []
        self.files: list[str] = []
        self.vhosts: list[VirtualHost] = []
        self.index = 0
        self.allow_on: list[str] = []
        self.has_allow_list = False
        self.include_stack: list[str] = []

    # -- files -----------------------------------------------------------

    def parse(self, text: str, filename: str, base_dir: str, ctx: _Context) -> None:
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
        self, pattern: str, optional: bool, line: Line, ctx: _Context, base_dir: str
    ) -> None:
        root = self.server_root or base_dir
        path = os.path.join(root, pattern)
        try:
            matches = expand_include(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read {path!r}: {exc}", line.filename, line.lineno
            ) from exc
        if not matches and not optional:
            what = "wildcard" if has_glob(pattern) else "file"
            raise ConfigError(
                f"Include: no {what} matches {path!r}", line.filename, line.lineno
            )
        for match in matches:
            real = os.path.realpath(match)
            if real in self.include_stack:
                chain = " -> ".join([*self.include_stack, real])
                raise ConfigError(f"Include cycle: {chain}", line.filename, line.lineno)
            if len(self.include_stack) >= _MAX_INCLUDE_DEPTH:
                raise ConfigError(
                    "Include nested too deeply", line.filename, line.lineno
                )
            try:
                with open(match, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"cannot read {match!r}: {exc}", line.filename, line.lineno
                ) from exc
            self.include_stack.append(real)
            try:
                self.parse(text, match, os.path.dirname(match), ctx)
            finally:
                self.include_stack.pop()

    # -- blocks ----------------------------------------------------------

    def block(
        self,
        lines: list[Line],
        pos: int,
        ctx: _Context,
        opener: Line | None,
        base_dir: str,
    ) -> int:
        """Read lines until the closing tag of *opener*; return the next index."""
        expected = _open_name(opener) if opener else None
        while pos < len(lines):
            line = lines[pos]
            text = line.text
            if ctx.active:
                text, missing = substitute(text, self.lookup)
                for name in missing:
                    self.warn(line, f"config variable ${{{name}}} is not defined")
            if text.startswith("</"):
                if expected is None:
                    return pos
                seen = text[2:].rstrip(">").strip()
                if seen.lower() != expected.lower():
                    canonical = _CANONICAL.get(expected.lower(), expected)
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
            name = _CANONICAL.get(expected.lower(), expected) if expected else ""
            raise ConfigError(
                f"<{name}> was not closed", opener.filename, opener.lineno
            )
        return pos

    def section(
        self, lines: list[Line], pos: int, text: str, ctx: _Context, base_dir: str
    ) -> int:
        line = Line(text, lines[pos].filename, lines[pos].lineno)
        name = _open_name(line)
        key = name.lower()
        canonical = _CANONICAL.get(key, name)
        if not name:
            raise ConfigError(
                f"{text.split()[0]!r} is not a section tag", line.filename, line.lineno
            )
        if ctx.depth >= _MAX_NESTING:
            raise ConfigError(
                f"<{canonical}> nested too deeply", line.filename, line.lineno
            )
        if not text.endswith(">") and ">" not in text:
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
            inner = _Context(
                ctx.level,
                ctx.active and self.condition(key, args[0]),
                ctx.values,
                ctx.origins,
                ctx.sections,
                ctx.tag,
                ctx.depth + 1,
            )
            return self.block(lines, pos + 1, inner, lines[pos], base_dir)
        if key == "virtualhost" and ctx.active:
            return self.virtualhost(lines, pos, line, args, ctx, base_dir)
        if key in _SECTIONS and ctx.active:
            return self.dir_section(lines, pos, line, key, args, ctx, base_dir)
        # A section we do not know: check its nesting, apply nothing inside.
        inner = _Context("foreign", False, tag=canonical, depth=ctx.depth + 1)
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
        ctx: _Context,
        base_dir: str,
    ) -> int:
        if ctx.level != "server":
            raise ConfigError(
                f"<VirtualHost> cannot occur within {_where(ctx)}",
                line.filename,
                line.lineno,
            )
        if not args:
            raise ConfigError(
                "<VirtualHost> needs at least one address", line.filename, line.lineno
            )
        vhost = _VHostBuilder(tuple(args), line.filename, line.lineno)
        inner = _Context("vhost", True, tag="VirtualHost", depth=ctx.depth + 1)
        self.current_vhost = vhost
        try:
            pos = self.block(lines, pos + 1, inner, lines[pos], base_dir)
        finally:
            self.current_vhost = None
        self.vhosts.append(
            VirtualHost(
                addresses=vhost.addresses,
                names=tuple(vhost.names + vhost.aliases),
                overrides=inner.overrides(),
                document_root=vhost.document_root,
                sections=tuple(inner.sections),
                filename=vhost.filename,
                lineno=vhost.lineno,
            )
        )
        return pos

    def dir_section(
        self,
        lines: list[Line],
        pos: int,
        line: Line,
        key: str,
        args: list[str],
        ctx: _Context,
        base_dir: str,
    ) -> int:
        tag, kind, regex = _SECTIONS[key]
        allowed = ctx.level in ("server", "vhost") or (
            kind == "files" and ctx.level == "directory"
        )
        if not allowed:
            raise ConfigError(
                f"<{tag}> cannot occur within {_where(ctx)}", line.filename, line.lineno
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
            pattern = os.path.join(self.server_root or base_dir, pattern)
        inner = _Context(kind, True, tag=tag, depth=ctx.depth + 1)
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
        # Nested sections were appended while reading the block; they need
        # this section as parent, which only exists now (records are frozen).
        nested = ctx.sections[first_nested:]
        del ctx.sections[first_nested:]
        ctx.sections.append(section)
        for child in nested:
            ctx.sections.append(dataclasses.replace(child, parent=section))
        return pos

    def next_index(self) -> int:
        self.index += 1
        return self.index

    # -- directives ------------------------------------------------------

    def directive(self, line: Line, ctx: _Context, base_dir: str) -> None:
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
        if key in ("include", "includeoptional"):
            if len(args) != 1:
                raise ConfigError(
                    f"{name} takes one argument", line.filename, line.lineno
                )
            self.include(args[0], key == "includeoptional", line, ctx, base_dir)
            return
        if key == "define":
            if not args or len(args) > 2 or ":" in args[0]:
                raise ConfigError(
                    "Define takes one or two arguments, NAME [VALUE]",
                    line.filename,
                    line.lineno,
                )
            self.defines[args[0]] = args[1] if len(args) == 2 else ""
            return
        if key == "undefine":
            if len(args) != 1:
                raise ConfigError(
                    "UnDefine takes one argument", line.filename, line.lineno
                )
            self.defines.pop(args[0], None)
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
            vhost = self.current_vhost
            if vhost is not None:
                target = vhost.names if key == "servername" else vhost.aliases
                if key == "servername":
                    target.clear()
                    args = args[:1]
                target.extend(_host_name(a) for a in args)
            return
        self.ignored.append(Directive(name, tuple(args), line.filename, line.lineno))

    # -- helpers ---------------------------------------------------------

    current_vhost: _VHostBuilder | None = None

    def lookup(self, name: str) -> str | None:
        if name in self.defines:
            return self.defines[name]
        return os.environ.get(name)

    def condition(self, key: str, arg: str) -> bool:
        negate = arg.startswith("!")
        name = arg[1:] if negate else arg
        if key == "ifdefine":
            result = name in self.defines
        elif _module_key(name) in {_module_key(m) for m in OUR_MODULES}:
            result = True
        else:
            result = self.modules is None or _module_key(name) in self.modules
        return result != negate

    def warn(self, line: Line, message: str) -> None:
        self.warnings.append(f"{line.filename}:{line.lineno}: {message}")


# -- small helpers -------------------------------------------------------


def _open_name(line: Line) -> str:
    text = line.text[1:]
    end = 0
    while end < len(text) and text[end] not in " \t>":
        end += 1
    return text[:end]


def _where(ctx: _Context) -> str:
    return f"<{ctx.tag}> section" if ctx.tag else "this context"


def _module_key(name: str) -> str:
    """``mod_ssl.c``, ``ssl_module`` and ``mod_ssl`` all name one module."""
    name = name.strip()
    if name.endswith(".c"):
        name = name[:-2]
    if name.startswith("mod_"):
        return name[4:]
    if name.endswith("_module"):
        return name[: -len("_module")]
    return name


def _host_name(value: str) -> str:
    """``ServerName https://Www.Example.com:443`` -> ``www.example.com``."""
    if "://" in value:
        value = value.split("://", 1)[1]
    if value.startswith("["):
        return value[: value.find("]") + 1].lower()
    return value.rsplit(":", 1)[0].lower() if value.count(":") == 1 else value.lower()


# -- entry points ----------------------------------------------------------


def _finish(parser: _Parser, ctx: _Context) -> ParsedConfig:
    if parser.allow_on and not parser.has_allow_list:
        for where in parser.allow_on:
            parser.warnings.append(
                f"{where}: AllowReproxy On with no ReproxyAllowTargets: the "
                "application may make this server fetch any http(s) URL"
            )
    return ParsedConfig(
        overrides=ctx.overrides(),
        document_root=parser.document_root,
        sections=tuple(ctx.sections),
        vhosts=tuple(parser.vhosts),
        ignored=tuple(parser.ignored),
        warnings=tuple(parser.warnings),
        files=tuple(parser.files),
    )


def parse_text(
    text: str,
    filename: str = "<string>",
    *,
    defines: Mapping[str, str] | None = None,
    modules: Collection[str] | None = None,
    base_dir: str | None = None,
) -> ParsedConfig:
    """Parse configuration *text*.

    :param filename: the name used in error messages.
    :param defines: names defined as with ``httpd -D NAME`` (and values).
    :param modules: the modules ``<IfModule>`` sees as loaded; ``None``
        means every module is assumed loaded.  mod_reproxy always is.
    :param base_dir: where relative ``Include`` paths start when there is no
        ``ServerRoot``; the current directory by default.
    :raises ConfigError: on any syntax error or bad value of our directives.
    """
    parser = _Parser(defines, modules)
    ctx = _Context("server", True)
    parser.parse(text, filename, base_dir or os.getcwd(), ctx)
    return _finish(parser, ctx)


def parse_file(
    path: str | os.PathLike[str],
    *,
    defines: Mapping[str, str] | None = None,
    modules: Collection[str] | None = None,
) -> ParsedConfig:
    """Read and parse the configuration file at *path*; see :func:`parse_text`."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration: {exc.strerror}", filename
        ) from exc
    parser = _Parser(defines, modules)
    parser.include_stack.append(os.path.realpath(filename))
    ctx = _Context("server", True)
    parser.parse(text, filename, os.path.dirname(os.path.abspath(filename)), ctx)
    return _finish(parser, ctx)
