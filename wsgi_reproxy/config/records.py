"""Frozen records the parser produces and the resolver consumes.

Every record knows where it came from (``filename``/``lineno``) so that
``explain``, ``check`` and log lines can point at the config line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .settings import Overrides

#: The three section categories, applied in this order (Apache's merge order).
SectionKind = Literal["directory", "files", "location"]

#: Which module's hook an alias belongs to: httpd runs mod_alias's
#: translate_name before mod_wsgi's (mod_wsgi registers after "mod_alias.c"),
#: then mod_userdir's, then core's DocumentRoot.
AliasModule = Literal["alias", "wsgi"]


@dataclass(frozen=True, slots=True)
class Directive:
    """One logical config line: ``name`` as written, ``args`` unquoted."""

    name: str
    args: tuple[str, ...]
    filename: str
    lineno: int

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"


@dataclass(frozen=True, slots=True)
class Section:
    """One ``<Directory>``, ``<Files>`` or ``<Location>`` block (or a variant).

    :param kind: the category: ``"directory"``, ``"files"`` or ``"location"``.
    :param tag: the section name as written, e.g. ``"LocationMatch"``.
    :param pattern: the argument, after ``${VAR}`` substitution.  For
        ``<Location ~ "re">`` this is the regex, and ``regex`` is true.
    :param regex: ``True`` for ``~`` forms and ``*Match`` sections.
    :param overrides: what the section sets.
    :param parent: for a ``<Files>`` nested in a ``<Directory>``, that
        directory section (the nested one applies only if it matches).
    :param index: position in file order across all included files.
    """

    kind: SectionKind
    tag: str
    pattern: str
    regex: bool
    overrides: Overrides
    filename: str
    lineno: int
    index: int
    parent: Section | None = None

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def describe(self) -> str:
        """``<LocationMatch "^/x">`` style text, for ``explain`` and logs."""
        tilde = "~ " if self.regex and not self.tag.lower().endswith("match") else ""
        return f'<{self.tag} {tilde}"{self.pattern}">'


@dataclass(frozen=True, slots=True)
class Alias:
    """One ``Alias``, ``AliasMatch``, ``ScriptAlias``, ``ScriptAliasMatch``,
    ``WSGIScriptAlias`` or ``WSGIScriptAliasMatch`` line.

    :param directive: the directive's canonical name, e.g. ``"ScriptAlias"``.
    :param url: the URL prefix, or the regex of a ``*Match`` form.
    :param target: the filesystem path (made absolute against ``ServerRoot``
        as httpd's ``ap_server_root_relative`` does); ``$0``..``$9`` in a
        ``*Match`` form.
    :param regex: ``True`` for the ``*Match`` forms.
    :param module: ``"alias"`` (mod_alias) or ``"wsgi"`` (mod_wsgi).
    """

    directive: str
    url: str
    target: str
    regex: bool
    module: AliasModule
    filename: str
    lineno: int

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def describe(self) -> str:
        """``Alias "/x" "/srv/x"`` style text, for ``explain`` and ``check``."""
        return f'{self.directive} "{self.url}" "{self.target}"'


@dataclass(frozen=True, slots=True)
class UserDir:
    """What the ``UserDir`` lines of one server (main or virtual host) say.

    :param paths: the directory forms of the last ``UserDir DIR…`` line
        (``public_html``, ``/srv/users``, ``/home/*/www``), ``None`` when
        no line set one (httpd 2.4: then ``/~user`` is not mapped).
    :param disabled: ``True``/``False`` after ``UserDir disabled`` /
        ``UserDir enabled`` without names, ``None`` when neither was said.
    :param disabled_users: names after ``UserDir disabled``.
    :param enabled_users: names after ``UserDir enabled``.
    :param filename: where the line setting *paths* was (``""`` for none).
    """

    paths: tuple[str, ...] | None
    disabled: bool | None
    disabled_users: frozenset[str]
    enabled_users: frozenset[str]
    filename: str
    lineno: int

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def describe(self) -> str:
        return "UserDir " + " ".join(self.paths or ())


@dataclass(frozen=True, slots=True)
class VirtualHost:
    """A ``<VirtualHost addr...>`` block.

    :param addresses: the addresses as written: ``"*:80"``, ``"_default_:443"``,
        ``"127.0.0.1:8080"``, ``"[::1]:80"``, ``"*"``.
    :param names: ``ServerName`` first (if any), then every ``ServerAlias``,
        lower-cased; aliases may hold ``*`` and ``?`` wildcards.
    :param overrides: our directives written directly in the block.
    :param document_root: ``DocumentRoot`` inside the block, if any.
    :param sections: the sections inside the block, in file order.
    :param aliases: the block's ``Alias``-family lines, in file order.
    :param userdir: the block's ``UserDir`` lines, if any.
    """

    addresses: tuple[str, ...]
    names: tuple[str, ...]
    overrides: Overrides
    document_root: str | None
    sections: tuple[Section, ...]
    filename: str
    lineno: int
    aliases: tuple[Alias, ...] = ()
    userdir: UserDir | None = None

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    """Everything the parser read from one top-level file or string.

    :param overrides: our directives at server level (outside any section).
    :param document_root: the main server's ``DocumentRoot``, if any.
    :param sections: main-server sections in file order.
    :param vhosts: virtual hosts in file order.
    :param ignored: directives this project does not know (not applied).
    :param warnings: ``"file:line: message"`` strings for ``check``.
    :param files: every file read, in the order read.
    :param aliases: the main server's ``Alias``-family lines, in file order.
    :param userdir: the main server's ``UserDir`` lines, if any.
    """

    overrides: Overrides
    document_root: str | None
    sections: tuple[Section, ...]
    vhosts: tuple[VirtualHost, ...]
    ignored: tuple[Directive, ...]
    warnings: tuple[str, ...]
    files: tuple[str, ...]
    aliases: tuple[Alias, ...] = ()
    userdir: UserDir | None = None
