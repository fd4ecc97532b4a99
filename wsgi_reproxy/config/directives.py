"""Our directives: argument validation into typed setting values.

Each validator takes the directive's words and its :class:`Line` and returns
the value stored in :class:`~wsgi_reproxy.config.settings.Overrides`, or raises
:class:`ConfigError` naming ``file:line``.  :func:`store` files the value
under its setting field; repeated lines of a list directive in one context
add to the list (SPEC §3).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from werkzeug.http import is_hop_by_hop_header

from ..exceptions import ConfigError
from . import dialects
from .allowlist import compile_target
from .headernames import HEADER_NAME, NEVER_PRESERVED
from .lexer import Line


class Env(Protocol):
    """What a validator may ask of the parser."""

    server_root: str | None

    def warn(self, line: Line, message: str) -> None: ...


def _on_off(args: list[str], line: Line, env: Env) -> object:
    if len(args) != 1 or args[0].lower() not in ("on", "off"):
        raise ConfigError("AllowReproxy must be On or Off", line.filename, line.lineno)
    return args[0].lower() == "on"


def _switch(name: str) -> Callable[[list[str], Line, Env], object]:
    def parse(args: list[str], line: Line, env: Env) -> object:
        if len(args) != 1 or args[0].lower() not in ("on", "off"):
            raise ConfigError(f"{name} must be On or Off", line.filename, line.lineno)
        return args[0].lower() == "on"

    return parse


def _headers(name: str) -> Callable[[list[str], Line, Env], object]:
    def parse(args: list[str], line: Line, env: Env) -> object:
        if not args:
            raise ConfigError(
                f"{name} needs at least one header name", line.filename, line.lineno
            )
        if name in _NONE_ALLOWED and [a.lower() for a in args] == ["none"]:
            return ()
        for arg in args:
            if not HEADER_NAME.fullmatch(arg):
                raise ConfigError(
                    f"{name}: {arg!r} is not a header name", line.filename, line.lineno
                )
            if name in _PRESERVING and (
                arg.lower() in NEVER_PRESERVED or is_hop_by_hop_header(arg)
            ):
                env.warn(
                    line,
                    f"{name} {arg}: this header is never "
                    "preserved from the application's response",
                )
        return tuple(args)

    return parse


#: List directives where ``None`` alone means the empty list.
_NONE_ALLOWED = frozenset({"ReproxyForwardHeaders", "ReproxyKeepAppHeaders"})
#: List directives naming app headers kept over the target's (SPEC §4.5).
_PRESERVING = frozenset({"PreserveHeaders", "ReproxyKeepAppHeaders"})


def _targets(args: list[str], line: Line, env: Env) -> object:
    if not args:
        raise ConfigError(
            "ReproxyAllowTargets needs at least one URL pattern",
            line.filename,
            line.lineno,
        )
    for arg in args:
        try:
            compile_target(arg)
        except ValueError as exc:
            raise ConfigError(str(exc), line.filename, line.lineno) from exc
    return tuple(args)


def _timeout(args: list[str], line: Line, env: Env) -> object:
    usage = "ReproxyTimeout takes CONNECT [READ [TOTAL]], positive numbers of seconds"
    if not 1 <= len(args) <= 3:
        raise ConfigError(usage, line.filename, line.lineno)
    values = []
    for arg in args:
        try:
            value = float(arg)
        except ValueError:
            raise ConfigError(
                f"{usage}, not {arg!r}", line.filename, line.lineno
            ) from None
        if not 0 < value < 86400:  # also rejects nan and inf
            raise ConfigError(f"{usage}, not {arg!r}", line.filename, line.lineno)
        values.append(value)
    return tuple(values)


def _redirects(args: list[str], line: Line, env: Env) -> object:
    if (
        len(args) != 1
        or not (args[0].isascii() and args[0].isdigit())
        or int(args[0]) > 20
    ):
        raise ConfigError(
            "ReproxyMaxRedirects takes a whole number from 0 to 20",
            line.filename,
            line.lineno,
        )
    return int(args[0])


def _roots(args: list[str], line: Line, env: Env) -> object:
    if not args:
        raise ConfigError(
            "ReproxyFileRoot needs at least one directory", line.filename, line.lineno
        )
    base = env.server_root or os.path.dirname(os.path.abspath(line.filename))
    return tuple(os.path.normpath(os.path.join(base, arg)) for arg in args)


DIRECTIVES: dict[str, Callable[[list[str], Line, Env], object]] = {
    "allowreproxy": _on_off,
    "preserveheaders": _headers("PreserveHeaders"),
    "reproxyallowtargets": _targets,
    "reproxytimeout": _timeout,
    "reproxymaxredirects": _redirects,
    "reproxyforwardheaders": _headers("ReproxyForwardHeaders"),
    "reproxyfileroot": _roots,
    "reproxykeepappheaders": _headers("ReproxyKeepAppHeaders"),
    "reproxylogquery": _switch("ReproxyLogQuery"),
    **dialects.DIRECTIVES,  # mod_xsendfile's and nginx's (SPEC §3)
}
_FIELDS = {
    "allowreproxy": "allow_reproxy",
    "preserveheaders": "preserve_headers",
    "reproxyallowtargets": "allow_targets",
    "reproxymaxredirects": "max_redirects",
    "reproxyforwardheaders": "forward_headers",
    "reproxyfileroot": "file_roots",
    "reproxykeepappheaders": "keep_app_headers",
    "reproxylogquery": "log_query",
    **dialects.FIELDS,
}
_ADDITIVE = frozenset(
    {
        "preserveheaders",
        "reproxyallowtargets",
        "reproxyforwardheaders",
        "reproxyfileroot",
        "reproxykeepappheaders",
        *dialects.ADDITIVE,
    }
)


def store(
    values: dict[str, object],
    origins: dict[str, str],
    key: str,
    value: object,
    line: Line,
) -> None:
    where = f"{line.filename}:{line.lineno}"
    if key == "reproxytimeout":
        assert isinstance(value, tuple)
        names = ("connect_timeout", "read_timeout", "total_timeout")[: len(value)]
        for name, seconds in zip(names, value, strict=True):
            values[name] = seconds
            origins[name] = where
        return
    name = _FIELDS[key]
    if key in _ADDITIVE and name in values:
        # "repeated lines add" within one context (SPEC §3)
        previous = values[name]
        assert isinstance(previous, tuple) and isinstance(value, tuple)
        value = previous + value
    values[name] = value
    origins[name] = where
