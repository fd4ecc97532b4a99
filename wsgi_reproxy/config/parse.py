"""Entry points of the parser: configuration text or a file -> ParsedConfig.

The block reader (:mod:`.reader`) does the work; these start it on a string or
a file and collect its output::

    parsed = parse_file("/etc/apache2/conf-enabled/reproxy.conf")
    parsed.sections, parsed.warnings
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

from ..exceptions import ConfigError
from .reader import Parser
from .records import ParsedConfig
from .sections import Context
from .suggest import did_you_mean


def _finish(parser: Parser, ctx: Context) -> ParsedConfig:
    if parser.allow_on and not parser.has_allow_list:
        for where in parser.allow_on:
            parser.warnings.append(
                f"{where}: AllowReproxy On with no ReproxyAllowTargets: the "
                "application may make this server fetch any http(s) URL"
            )
    parser.warnings.extend(did_you_mean(parser.ignored))
    return ParsedConfig(
        overrides=ctx.overrides(),
        document_root=parser.document_root,
        sections=tuple(ctx.sections),
        vhosts=tuple(parser.vhosts),
        ignored=tuple(parser.ignored),
        warnings=tuple(parser.warnings),
        files=tuple(parser.files),
        aliases=tuple(parser.mapping.aliases),
        userdir=parser.mapping.userdir.record(),
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
    parser = Parser(defines, modules)
    ctx = Context("server", True)
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
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"cannot read configuration: {reason}", filename) from exc
    parser = Parser(defines, modules)
    parser.includes.stack.append(os.path.realpath(filename))
    ctx = Context("server", True)
    parser.parse(text, filename, os.path.dirname(os.path.abspath(filename)), ctx)
    return _finish(parser, ctx)
