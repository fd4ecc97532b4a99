"""URL path -> filesystem path, as httpd 2.4's translate_name hooks compute it.

Usage::

    from wsgi_reproxy.resolve.aliases import Mapper

    mapper = Mapper(vhost, parsed, root="/var/www/html")  # once per server
    mapper.map("/downloads/x.iso", environ)  # Mapped('/srv/files/x.iso', alias, ...)

``<Directory>`` and ``<Files>`` sections see the path this gives, in the
order httpd's hooks run (each module's ``register_hooks``):

1. ``SCRIPT_FILENAME`` when the server sets it: mod_wsgi passes the file
   Apache's own walk used, which no config reading can improve on.
2. mod_alias: ``Alias``, ``ScriptAlias``, ``AliasMatch``, ``ScriptAliasMatch``,
   one list in file order, the virtual host's lines before the main server's
   (``merge_alias_config`` appends the base array to the vhost's); the first
   that matches wins.  ``Alias /x /d`` matches ``/x`` and ``/x/…`` but not
   ``/xy``; ``Alias /x/ /d/`` does not match ``/x``; runs of ``/`` in the
   alias match runs in the URL (``alias_matches``).  The file is the target
   plus the rest of the URL; for the ``Match`` forms it is the target alone,
   with ``$0``..``$9`` replaced by the groups (``ap_pregsub``; ``\\`` escapes
   the next character).
3. mod_wsgi (its hook runs after mod_alias's): ``WSGIScriptAlias`` and
   ``WSGIScriptAliasMatch``, the same matching, vhost first; the file is
   the target plus the rest of the URL (after the whole regex match for the
   ``Match`` form).  A target not ending in ``/`` is the script file itself:
   when the rest starts with ``/`` it is the script's ``PATH_INFO``, which is
   where httpd's directory walk stops on disk.
4. mod_userdir: ``/~user/rest`` with ``UserDir public_html`` is
   ``/home/user/public_html/rest`` (home directories are taken to be
   ``/home/USER``: nothing is looked up on the machine), ``UserDir
   /srv/users`` gives ``/srv/users/user/rest``, ``UserDir /home/*/www``
   gives ``/home/user/www/rest``; not for disabled users; of several
   directories the first (httpd takes the first that exists on disk);
   redirect forms (``http://…``) are not applied.  A virtual host inherits
   the directories and the global ``disabled``/``enabled`` but, as httpd's
   ``merge_userdir_config``, not the main server's lists of user names.
5. ``DocumentRoot`` (the ``document_root`` argument, else the virtual host's,
   else the main server's) joined with the URL path.

Paths are normalised (``.``/``..`` resolved, runs of ``/`` merged, a trailing
``/`` kept); nothing is looked up on disk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.records import Alias, ParsedConfig, UserDir, VirtualHost
from .paths import merge_slashes, normpath

#: Where ``UserDir public_html`` looks for ``~user``: ``/home/user``.
HOME = "/home"


@dataclass(frozen=True, slots=True)
class Mapped:
    """Where a URL lives on disk, and which line said so.

    :param path: the normalised filesystem path.
    :param source: the ``Alias``-family or ``UserDir`` record that mapped it,
        ``None`` for ``DocumentRoot`` and ``SCRIPT_FILENAME``.
    :param how: ``"SCRIPT_FILENAME"``, ``"DocumentRoot"``, ``"UserDir"`` or
        the alias directive's name.
    """

    path: str
    source: Alias | UserDir | None
    how: str

    def describe(self) -> str:
        """``Alias "/x" "/d" at site.conf:3`` style text for ``explain``."""
        if self.source is None:
            return self.how
        return f"{self.source.describe()} at {self.source.where}"


def alias_matches(uri: str, fake: str) -> int:
    """httpd's ``alias_matches``: how many characters of *uri* the URL prefix
    *fake* matches (0: no match).  Runs of ``/`` match runs of ``/``, and the
    match must end at a segment boundary unless *fake* ends with ``/``."""
    a = u = 0
    while a < len(fake):
        if fake[a] == "/":
            if u >= len(uri) or uri[u] != "/":
                return 0
            while a < len(fake) and fake[a] == "/":
                a += 1
            while u < len(uri) and uri[u] == "/":
                u += 1
        else:
            if u >= len(uri) or uri[u] != fake[a]:
                return 0
            a += 1
            u += 1
    if not fake or (fake[-1] != "/" and u < len(uri) and uri[u] != "/"):
        return 0
    return u


def _template(target: str) -> list[str | int]:
    """``ap_pregsub``'s reading of *target*: literals and group numbers."""
    parts: list[str | int] = []
    i = 0
    while i < len(target):
        c = target[i]
        i += 1
        if c == "$" and i < len(target) and target[i] in "0123456789":
            parts.append(int(target[i]))
            i += 1
            continue
        if c == "\\" and i < len(target):
            c = target[i]
            i += 1
        if parts and isinstance(parts[-1], str):
            parts[-1] += c
        else:
            parts.append(c)
    return parts


class _Rule:
    """One alias, compiled."""

    __slots__ = ("alias", "prefix", "regex", "script", "template")

    def __init__(self, alias: Alias) -> None:
        self.alias = alias
        self.regex = re.compile(alias.url) if alias.regex else None
        self.template = _template(alias.target) if alias.regex else []
        # the URL path is slash-merged already, so a merged prefix and a
        # segment check equal alias_matches (tested against each other)
        self.prefix = merge_slashes(alias.url)
        self.script = alias.module == "wsgi" and not alias.target.endswith("/")

    def apply(self, uri: str) -> str | None:
        if self.regex is not None:
            m = self.regex.search(uri)
            if m is None:
                return None
            target = "".join(
                part if isinstance(part, str) else (m.group(part) or "")
                for part in self.template
                if isinstance(part, str) or part <= self.regex.groups
            )
            if self.alias.module == "alias":
                return target  # AliasMatch: the substitution alone
            rest = uri[m.end() :]
        else:
            size = len(self.prefix)
            if not uri.startswith(self.prefix) or not size:
                return None
            if not self.prefix.endswith("/") and len(uri) > size and uri[size] != "/":
                return None
            target = self.alias.target
            # mod_wsgi appends the whole URI for "WSGIScriptAlias / …"
            rest = (
                uri
                if self.prefix == "/" and self.alias.module == "wsgi"
                else uri[size:]
            )
        if self.script and (not rest or rest.startswith("/")):
            return target  # the script; httpd's walk makes the rest PATH_INFO
        return target + rest


def _userdir_path(userdir: UserDir, user: str, rest: str) -> str | None:
    """mod_userdir's ``translate_userdir`` for one user, first directory."""
    if user in userdir.disabled_users:
        return None
    if userdir.disabled and user not in userdir.enabled_users:
        return None
    entry = userdir.paths[0] if userdir.paths else ""
    absolute = entry.startswith("/")
    before, star, after = entry.partition("*")
    if star and (not after or absolute):
        if ":" in before and not absolute:
            return None  # "http://x/*": a redirect, not applied
        return before + user + after + rest
    if star or ":" in entry:
        return None  # "http://x/*/y", "http://x/users": redirects
    if absolute:
        return entry + "/" + user + rest
    return f"{HOME}/{user}/{entry}{rest}"


def _merged_userdir(vhost: UserDir | None, main: UserDir | None) -> UserDir | None:
    """httpd's ``merge_userdir_config``: the user lists are not inherited."""
    if vhost is None:
        if main is None:
            return None
        return UserDir(main.paths, main.disabled, frozenset(), frozenset(), "", 0)
    if vhost.paths is None and main is not None:
        vhost = UserDir(
            main.paths,
            vhost.disabled,
            vhost.disabled_users,
            vhost.enabled_users,
            main.filename,
            main.lineno,
        )
    if vhost.disabled is None and main is not None:
        vhost = UserDir(
            vhost.paths,
            main.disabled,
            vhost.disabled_users,
            vhost.enabled_users,
            vhost.filename,
            vhost.lineno,
        )
    return vhost if vhost.paths else None


class Mapper:
    """The URL-to-file map of one server; see the module docstring.

    :param vhost: the virtual host, ``None`` for the main server.
    :param parsed: the whole parse (for the main server's lines).
    :param root: the document root in force, normalised, or ``None``.
    """

    def __init__(
        self, vhost: VirtualHost | None, parsed: ParsedConfig, root: str | None
    ) -> None:
        own = vhost.aliases if vhost is not None else ()
        aliases = [*own, *parsed.aliases]
        self.rules = [_Rule(a) for a in aliases if a.module == "alias"]
        self.rules += [_Rule(a) for a in aliases if a.module == "wsgi"]
        if vhost is None:
            self.userdir = _merged_userdir(parsed.userdir, None)
        else:
            self.userdir = _merged_userdir(vhost.userdir, parsed.userdir)
        self.root = root
        self.root_prefix = "" if root is None else root.rstrip("/") + "/"
        # bounded like the resolver's own cache: endless distinct paths cost
        # memory only up to this many entries
        self._cached = functools.lru_cache(maxsize=1024)(self._from_url)

    def map(self, url_path: str, environ: Mapping[str, Any]) -> Mapped | None:
        """Where *url_path* (dot segments removed) lives, or ``None``."""
        script = environ.get("SCRIPT_FILENAME")
        if isinstance(script, str) and script:
            return Mapped(normpath(script), None, "SCRIPT_FILENAME")
        found: Mapped | None = self._cached(url_path)
        return found

    def _from_url(self, url_path: str) -> Mapped | None:
        if url_path.startswith("/"):  # httpd declines any other r->uri
            uri = merge_slashes(url_path)
            for rule in self.rules:
                found = rule.apply(uri)
                if found is not None:
                    return Mapped(_clean(found), rule.alias, rule.alias.directive)
            if self.userdir is not None and uri.startswith("/~"):
                user, slash, rest = uri[2:].partition("/")
                if user and not _dotted(user):
                    found = _userdir_path(self.userdir, user, slash + rest)
                    if found is not None:
                        return Mapped(_clean(found), self.userdir, "UserDir")
        if self.root is None:
            return None
        relative = url_path if url_path.startswith("/") else "/" + url_path
        path = normpath(self.root + relative)
        # The URL path has no ".." left, but stay inside the root whatever
        # a future change does to it: an escape maps to the root itself.
        if path != self.root and not path.startswith(self.root_prefix):
            path = self.root  # pragma: no cover - unreachable today
        if relative.endswith("/") and not path.endswith("/"):
            path += "/"
        return Mapped(path, None, "DocumentRoot")


def _dotted(user: str) -> bool:
    """mod_userdir's test for ``.``/``..``, as written (it looks at the
    second and third characters, so ``~a.`` and ``~a..`` are declined)."""
    return len(user) > 1 and user[1] == "." and (len(user) == 2 or user[2:] == ".")


def _clean(path: str) -> str:
    """Normalised, keeping a trailing ``/`` (it names a directory)."""
    clean = normpath(path) if path else "/"
    if path.endswith("/") and not clean.endswith("/"):
        clean += "/"
    return clean
