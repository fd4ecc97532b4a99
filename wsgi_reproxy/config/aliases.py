"""URL-to-file directives: the ``Alias`` family and ``UserDir``, read into records.

httpd maps a URL to a file before its ``<Directory>`` walk; these lines say
how, and the resolver (:mod:`wsgi_reproxy.resolve.aliases`) applies them:

* mod_alias: ``Alias URL-PATH DIR``, ``ScriptAlias``, ``AliasMatch REGEX
  DIR`` and ``ScriptAliasMatch`` (``$0``..``$9`` in DIR), one list in file
  order;
* mod_wsgi: ``WSGIScriptAlias URL-PATH SCRIPT [options]`` and
  ``WSGIScriptAliasMatch``, a second list;
* mod_userdir: ``UserDir public_html``, ``UserDir /srv/users``, ``UserDir
  /home/*/www``, ``UserDir disabled [USER…]``, ``UserDir enabled [USER…]``.

They count at server level and in ``<VirtualHost>`` only, as in httpd
(``RSRC_CONF``).  A form this project does not apply (the one-argument
``Alias`` inside ``<Location>``, an expression; a line in the wrong context;
a regex Python cannot compile) is ignored with a warning rather than an
error, so a whole ``apache2.conf`` still loads::

    builder = MappingBuilder()
    args = ["/downloads", "/srv/files"]
    read_mapping("alias", args, line, "server", "/", builder, warn)
    builder.aliases[0].describe()  # 'Alias "/downloads" "/srv/files"'
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from .lexer import Line
from .records import Alias, AliasModule, UserDir

# directive (lower case) -> (canonical name, module, regex?)
ALIASES: dict[str, tuple[str, AliasModule, bool]] = {
    "alias": ("Alias", "alias", False),
    "scriptalias": ("ScriptAlias", "alias", False),
    "aliasmatch": ("AliasMatch", "alias", True),
    "scriptaliasmatch": ("ScriptAliasMatch", "alias", True),
    "wsgiscriptalias": ("WSGIScriptAlias", "wsgi", False),
    "wsgiscriptaliasmatch": ("WSGIScriptAliasMatch", "wsgi", True),
}
#: Every directive this module reads.
MAPPING_DIRECTIVES = frozenset({*ALIASES, "userdir"})


@dataclass
class UserDirBuilder:
    """The ``UserDir`` lines of one server, as ``set_user_dir`` records them."""

    paths: tuple[str, ...] | None = None
    disabled: bool | None = None
    disabled_users: set[str] = field(default_factory=set)
    enabled_users: set[str] = field(default_factory=set)
    filename: str = ""
    lineno: int = 0
    seen: bool = False

    def apply(self, args: list[str], line: Line) -> None:
        """One ``UserDir`` line (mod_userdir.c ``set_user_dir``)."""
        self.seen = True
        keyword = args[0].lower()
        if keyword in ("disable", "disabled", "enable", "enabled"):
            off = keyword.startswith("disable")
            if len(args) == 1:
                self.disabled = off  # O_DISABLE / O_ENABLE
            else:
                (self.disabled_users if off else self.enabled_users).update(args[1:])
            return
        # any other first word: the whole line is the directory list
        self.paths = tuple(args)
        self.filename, self.lineno = line.filename, line.lineno

    def record(self) -> UserDir | None:
        if not self.seen:
            return None
        return UserDir(
            paths=self.paths,
            disabled=self.disabled,
            disabled_users=frozenset(self.disabled_users),
            enabled_users=frozenset(self.enabled_users),
            filename=self.filename,
            lineno=self.lineno,
        )


@dataclass
class MappingBuilder:
    """The mapping lines of one server (the main one or a virtual host)."""

    aliases: list[Alias] = field(default_factory=list)
    userdir: UserDirBuilder = field(default_factory=UserDirBuilder)


def read_mapping(
    key: str,
    args: list[str],
    line: Line,
    level: str,
    root: str,
    into: MappingBuilder,
    warn: Callable[[Line, str], None],
) -> None:
    """Record the mapping directive *key* (in :data:`MAPPING_DIRECTIVES`).

    :param level: the parser's context level (``"server"``, ``"vhost"``, …).
    :param root: where a relative path starts (``ServerRoot``, else the file's
        directory), as httpd's ``ap_server_root_relative``.
    :param into: the server the line belongs to.
    :param warn: reports a line that is ignored, and why.
    """
    name = ALIASES[key][0] if key in ALIASES else "UserDir"
    if level not in ("server", "vhost"):
        if key in ("alias", "scriptalias") and len(args) == 1 and level == "location":
            warn(line, f"{name} with one argument (an expression) is not applied")
        else:
            warn(line, f"{name} is not allowed here (httpd: server config only)")
        return
    if key == "userdir":
        if args:
            into.userdir.apply(args, line)
        else:
            warn(line, "UserDir requires an argument: ignored")
        return
    canonical, module, regex = ALIASES[key]
    # WSGIScriptAlias takes options after the two paths (process-group=…)
    wanted = args[:2] if module == "wsgi" and all("=" in a for a in args[2:]) else args
    if len(wanted) != 2:
        warn(line, f"{canonical} takes a URL and a path: ignored")
        return
    url, target = wanted
    if regex:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # FutureWarning: nested set
                re.compile(url)
        except (re.error, OverflowError, RecursionError) as exc:
            warn(line, f"{canonical} regex {url!r} does not compile: {exc}: ignored")
            return
    into.aliases.append(
        Alias(
            directive=canonical,
            url=url,
            target=os.path.join(root, target),
            regex=regex,
            module=module,
            filename=line.filename,
            lineno=line.lineno,
        )
    )
