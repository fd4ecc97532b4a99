"""``check`` and ``explain``: the configuration half of the command line.

``check`` is ``apachectl configtest`` for our directives: it parses, prints
warnings and a summary, and exits non-zero with ``file:line: message`` on the
first error.  ``explain`` answers "what applies to this URL?" like
``apachectl -S`` does for virtual hosts: the sections that matched, in merge
order, and the effective settings with the line that set each one.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..config.settings import SETTING_FIELDS, Settings
from ..exceptions import ConfigError
from ..resolve.resolver import Config, load_config


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``check`` and ``explain`` on the command line."""
    check = commands.add_parser(
        "check",
        help="parse a config file and report errors and warnings",
        description="Parse CONF (following Includes) and report errors and "
        "warnings. Exit status 0 when it loads, 1 on the first error.",
    )
    check.add_argument("conf", metavar="CONF")
    check.add_argument(
        "--strict",
        action="store_true",
        help="also list every directive this project does not know (ignored)",
    )
    _add_load_options(check)
    check.set_defaults(func=run_check)

    explain = commands.add_parser(
        "explain",
        help="show which sections match a URL and the settings they produce",
        description="Show the sections that match URL, in Apache's merge order, "
        "and the effective settings for a GET of it.",
    )
    explain.add_argument("conf", metavar="CONF")
    explain.add_argument("url", metavar="URL", help="a path (/a/b) or a full URL")
    explain.add_argument("--host", help="the Host header (default: from URL)")
    explain.add_argument(
        "--document-root", help="as the middleware's document_root argument"
    )
    explain.add_argument(
        "--merge",
        choices=("field", "replace"),
        default="field",
        help="field-wise merge (default) or mod_reproxy's replace-all",
    )
    _add_load_options(explain)
    explain.set_defaults(func=run_explain)


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-D",
        "--define",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="define NAME for <IfDefine> and ${NAME}, like httpd -D",
    )
    parser.add_argument(
        "--module",
        action="append",
        metavar="NAME",
        help="a module <IfModule> sees as loaded (repeatable); without any, "
        "every module is assumed loaded",
    )


def _load(args: argparse.Namespace, **kwargs: Any) -> Config:
    defines = dict(d.partition("=")[::2] for d in args.define)
    return load_config(args.conf, defines=defines, modules=args.module, **kwargs)


def run_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        config = _load(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    parsed = config.parsed
    # config.warnings: the parser's, plus what only the resolver can tell
    # (a <Directory> no DocumentRoot or alias reaches)
    for warning in config.warnings:
        print(f"warning: {warning}", file=out)
    if args.strict:
        for d in parsed.ignored:
            print(f"ignored: {d.where}: {' '.join((d.name, *d.args))}", file=out)
    sections = len(parsed.sections) + sum(len(v.sections) for v in parsed.vhosts)
    print(
        f"Syntax OK: {len(parsed.files)} file(s), {sections} section(s), "
        f"{len(parsed.vhosts)} virtual host(s), {len(parsed.ignored)} directive(s) "
        f"ignored, {len(config.warnings)} warning(s)",
        file=out,
    )
    return 0


def environ_for(url: str, host: str | None = None) -> dict[str, Any]:
    """A minimal GET environ for *url* (a path or an absolute URL)."""
    parts = urlsplit(url if "://" in url else "http://localhost" + url)
    scheme = parts.scheme or "http"
    netloc = host or parts.netloc
    default = "443" if scheme == "https" else "80"
    port = str(parts.port or default) if not host else default
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": parts.path or "/",
        "QUERY_STRING": parts.query,
        "SERVER_NAME": (parts.hostname or "localhost"),
        "SERVER_PORT": port,
        "HTTP_HOST": netloc,
        "wsgi.url_scheme": scheme,
    }


def run_explain(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        config = _load(args, merge=args.merge, document_root=args.document_root)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    environ = environ_for(args.url, args.host)
    result = config.explain(environ)
    vhost = result.vhost
    print(f"Host: {environ['HTTP_HOST']}  URL path: {result.url_path}", file=out)
    print(f"Filesystem path: {result.fs_path or '(none: no DocumentRoot)'}", file=out)
    mapped = result.mapped
    if mapped is not None and mapped.source is not None:
        how = f"{mapped.how} at {mapped.source.where}  ({mapped.source.describe()})"
        print(f"Mapped by: {how}", file=out)
    elif mapped is not None:
        print(f"Mapped by: {mapped.how}", file=out)
    if vhost is None:
        print("Virtual host: (main server)", file=out)
    else:
        name = vhost.names[0] if vhost.names else "(no ServerName)"
        addresses = " ".join(vhost.addresses)
        print(
            f"Virtual host: {name} <VirtualHost {addresses}> at {vhost.where}", file=out
        )
    print(f"Sections matched, in merge order ({config.merge} merge):", file=out)
    if not result.sections:
        print("  (none)", file=out)
    for number, section in enumerate(result.sections, start=1):
        sets = ", ".join(f"{k}={_show(v)}" for k, v in section.overrides.values)
        print(f"  {number}. {section.where}  {section.describe()}", file=out)
        print(f"       sets: {sets or '(nothing of ours)'}", file=out)
    print("Effective settings:", file=out)
    _print_settings(result.settings, out)
    return 0


def _print_settings(settings: Settings, out: TextIO) -> None:
    for name in SETTING_FIELDS:
        where = settings.origin(name) or "default"
        print(f"  {name} = {_show(getattr(settings, name))}  ({where})", file=out)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "On" if value else "Off"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value) or "(none)"
    return str(value)
