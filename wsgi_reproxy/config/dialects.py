"""The other servers' offload directives: mod_xsendfile's and nginx's, in ours.

Flask and Django apps already answer in nginx's dialect (``X-Accel-Redirect``)
or Apache mod_xsendfile's (``X-Sendfile``).  These directives say what the
middleware may do with them (SPEC §3)::

    ReproxySendfile On                    # or mod_xsendfile's own: XSendFile On
    XSendFilePath /srv/files              # a root, like ReproxyFileRoot
    ReproxyAccelRedirect /protected/ /srv/files/
    ReproxyAccelRedirect /s3/ https://bucket.s3.amazonaws.com/
    ReproxyHeadMethod GET                 # presigned URLs are signed for GET
    ReproxyMaxUrlLength 8192

:data:`DIRECTIVES` maps each lower-cased name to its validator,
:data:`FIELDS` to its :class:`~wsgi_reproxy.config.settings.Settings` field;
:data:`ADDITIVE` names the list directives whose repeated lines add up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..exceptions import ConfigError
from .lexer import Line
from .urls import bad_char, parse_url

#: ``ReproxyMaxUrlLength`` bounds: nginx's and gunicorn's request line limits
#: are 4-8 KiB, S3 accepts presigned URLs far beyond 2 KiB (session tokens).
MIN_URL_LENGTH, MAX_URL_LENGTH = 64, 65536


class Env(Protocol):
    """What a validator may ask of the parser (as in :mod:`.directives`)."""

    server_root: str | None

    def warn(self, line: Line, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AccelRedirect:
    """One ``ReproxyAccelRedirect PREFIX TARGET`` line.

    nginx's ``location PREFIX { internal; alias DIR/; }`` when *target* is a
    directory, ``{ internal; proxy_pass URL; }`` when it is a URL.

    :param prefix: the start of the ``X-Accel-Redirect`` path it takes.
    :param target: an absolute directory or an ``http(s)://`` URL prefix.
    :param is_url: whether *target* is a URL.
    :param where: ``file:line`` of the directive, for log lines.
    """

    prefix: str
    target: str
    is_url: bool
    where: str = ""

    def __str__(self) -> str:
        return f"{self.prefix}={self.target}"


def _where(line: Line) -> str:
    return f"{line.filename}:{line.lineno}"


def _on_off(name: str) -> Callable[[list[str], Line, Env], object]:
    def parse(args: list[str], line: Line, env: Env) -> object:
        if len(args) != 1 or args[0].lower() not in ("on", "off"):
            raise ConfigError(f"{name} must be On or Off", line.filename, line.lineno)
        return args[0].lower() == "on"

    return parse


def _directory(arg: str, line: Line, env: Env) -> str:
    # Relative to ServerRoot, else the config file, as ReproxyFileRoot.
    base = env.server_root or os.path.dirname(os.path.abspath(line.filename))
    return os.path.normpath(os.path.join(base, arg))


def _xsendfile_path(args: list[str], line: Line, env: Env) -> object:
    # mod_xsendfile: XSendFilePath <absolute path> [AllowFileDelete]
    if len(args) == 2 and args[1].lower() == "allowfiledelete":
        env.warn(line, "XSendFilePath AllowFileDelete is ignored: nothing is deleted")
        args = args[:1]
    if len(args) != 1:
        raise ConfigError(
            "XSendFilePath takes one directory [AllowFileDelete]",
            line.filename,
            line.lineno,
        )
    return (_directory(args[0], line, env),)


def _accel_redirect(args: list[str], line: Line, env: Env) -> object:
    usage = "ReproxyAccelRedirect takes PREFIX TARGET (a directory or an http(s) URL)"
    if len(args) != 2:
        raise ConfigError(usage, line.filename, line.lineno)
    prefix, target = args
    if not prefix.startswith("/") or bad_char(prefix) is not None or "?" in prefix:
        raise ConfigError(
            f"ReproxyAccelRedirect: prefix {prefix!r} must be a path starting with /",
            line.filename,
            line.lineno,
        )
    if target.lower().startswith(("http://", "https://")):
        problem = bad_char(target)
        if problem is None:
            try:
                parsed = parse_url(target)
            except ValueError as exc:
                problem = str(exc)
            else:
                if parsed.userinfo:
                    problem = "userinfo in URL"
                elif "?" in target or "#" in target:
                    problem = "a URL prefix has no query or fragment"
        if problem is not None:
            raise ConfigError(
                f"ReproxyAccelRedirect: target {target!r}: {problem}",
                line.filename,
                line.lineno,
            )
        return (AccelRedirect(prefix, target, True, _where(line)),)
    if "://" in target:
        raise ConfigError(
            f"ReproxyAccelRedirect: target {target!r}: only http and https URLs",
            line.filename,
            line.lineno,
        )
    directory = _directory(target, line, env)
    return (AccelRedirect(prefix, directory, False, _where(line)),)


def _head_method(args: list[str], line: Line, env: Env) -> object:
    if len(args) != 1 or args[0].upper() not in ("HEAD", "GET"):
        raise ConfigError(
            "ReproxyHeadMethod must be HEAD or GET", line.filename, line.lineno
        )
    return args[0].upper()


def _max_url_length(args: list[str], line: Line, env: Env) -> object:
    if (
        len(args) != 1
        or not (args[0].isascii() and args[0].isdigit())
        or not MIN_URL_LENGTH <= int(args[0]) <= MAX_URL_LENGTH
    ):
        raise ConfigError(
            f"ReproxyMaxUrlLength takes a whole number from {MIN_URL_LENGTH}"
            f" to {MAX_URL_LENGTH}",
            line.filename,
            line.lineno,
        )
    return int(args[0])


DIRECTIVES: dict[str, Callable[[list[str], Line, Env], object]] = {
    "reproxysendfile": _on_off("ReproxySendfile"),
    "xsendfile": _on_off("XSendFile"),
    "xsendfilepath": _xsendfile_path,
    "reproxyaccelredirect": _accel_redirect,
    "reproxyheadmethod": _head_method,
    "reproxymaxurllength": _max_url_length,
}
FIELDS = {
    "reproxysendfile": "sendfile",
    "xsendfile": "sendfile",
    # mod_xsendfile's roots and ours are one list: either directive adds.
    "xsendfilepath": "file_roots",
    "reproxyaccelredirect": "accel_redirects",
    "reproxyheadmethod": "head_method",
    "reproxymaxurllength": "max_url_length",
}
ADDITIVE = frozenset({"xsendfilepath", "reproxyaccelredirect"})
