"""The resolver: which sections match a request, and in which order they merge.

Most tests are written as config text, the way a user reads them; the
examples are httpd's own (the ``<Location>``, ``<Directory>`` and "How the
sections are merged" pages of the httpd 2.4 docs).
"""

from __future__ import annotations

import fnmatch
import http.client
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_reproxy import Config, ConfigError, Settings, load_config, parse_config
from wsgi_reproxy.config.parse import parse_text
from wsgi_reproxy.config.patterns import (
    glob_extension,
    glob_regex,
    regex_extension,
    regex_prefix,
)
from wsgi_reproxy.config.records import ParsedConfig, Section
from wsgi_reproxy.config.settings import DEFAULT_SETTINGS, Overrides
from wsgi_reproxy.resolve.match import Entry
from wsgi_reproxy.resolve.resolver import _fold


def environ(path: str = "/", host: str | None = None, **extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
    }
    if host is not None:
        env["HTTP_HOST"] = host
    env.update(extra)
    return env


def matched(config: Config, path: str = "/", **kwargs: Any) -> list[str]:
    """The matching sections, in merge order, as ``<Tag "pattern">`` strings."""
    explanation = config.explain(environ(path, **kwargs))
    return [section.describe() for section in explanation.sections]


def section(kind: str, pattern: str) -> str:
    """A section that turns AllowReproxy On."""
    return f"<{kind} {pattern}>\n  AllowReproxy On\n</{kind.split()[0]}>\n"


# -- <Location> ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        pytest.param("/private1", "/private1", True, id="prefix-exact"),
        pytest.param("/private1", "/private1/", True, id="prefix-slash"),
        pytest.param("/private1", "/private1/file.txt", True, id="prefix-below"),
        pytest.param("/private1", "/private1other", False, id="prefix-not-mid-segment"),
        pytest.param("/private2/", "/private2/", True, id="slash-pattern-slash"),
        pytest.param(
            "/private2/", "/private2/file.txt", True, id="slash-pattern-below"
        ),
        pytest.param("/private2/", "/private2", False, id="slash-pattern-needs-slash"),
        pytest.param("/", "/anything/at/all", True, id="root-matches-all"),
        pytest.param("/private1", "//private1///x", True, id="path-slashes-merged"),
        pytest.param("//private1", "/private1", True, id="pattern-slashes-merged"),
        pytest.param("/private1", "/Private1", False, id="case-sensitive"),
        pytest.param("/static/*.css", "/static/a.css", True, id="glob-star"),
        pytest.param("/static/*.css", "/static/sub/a.css", False, id="star-not-slash"),
        pytest.param("/static/*.css", "/static/a.css/x", False, id="glob-whole-path"),
        pytest.param("/a?c", "/abc", True, id="glob-question"),
        pytest.param("/a?c", "/a/c", False, id="question-not-slash"),
        pytest.param("/[ab]x", "/bx", True, id="glob-class"),
        pytest.param("/[!ab]x", "/cx", True, id="glob-negated-class"),
        pytest.param("/[!ab]x", "/ax", False, id="glob-negated-class-miss"),
        pytest.param("/a[!b]c", "/a/c", False, id="negated-class-not-slash"),
        pytest.param("/*/img", "//x//img", True, id="glob-path-slashes-merged"),
        pytest.param("/private1", "/public/../private1/x", True, id="dot-dot-removed"),
        pytest.param("/private1", "/private1/../public", False, id="dot-dot-leaves"),
        pytest.param("/private1", "/./private1", True, id="dot-removed"),
        pytest.param("/private1", "/../../private1", True, id="dot-dot-above-root"),
    ],
)
def test_location_matching_follows_httpd(
    pattern: str, path: str, expected: bool
) -> None:
    config = parse_config(section("Location", pattern))
    assert bool(matched(config, path)) is expected


@pytest.mark.parametrize(
    ("opening", "path", "expected"),
    [
        pytest.param(
            r'LocationMatch "\.jpg$"', "/a/b/c.jpg", True, id="search-not-match"
        ),
        pytest.param(r'Location ~ "\.jpg$"', "/a/b/c.jpg", True, id="tilde-form"),
        pytest.param('LocationMatch "/b/"', "/a/b/c", True, id="unanchored-anywhere"),
        pytest.param('LocationMatch "^/b/"', "/a/b/c", False, id="anchored"),
        pytest.param(
            'LocationMatch "^/a/b"', "//a//b", True, id="regex-sees-merged-slashes"
        ),
        pytest.param('LocationMatch "^/a//b"', "/a//b", False, id="regex-no-double"),
        pytest.param('LocationMatch "^/(a|b)/x"', "/b/x", True, id="group-alternation"),
        pytest.param('LocationMatch "^/a/x|^/b/x"', "/b/x", True, id="top-alternation"),
        pytest.param('LocationMatch "(?i)^/A/"', "/a/x", True, id="inline-flag"),
        pytest.param('LocationMatch "^/files?/"', "/file/x", True, id="optional-char"),
        pytest.param('LocationMatch "^/x+/"', "/xxx/", True, id="plus-quantifier"),
        pytest.param(
            'LocationMatch "^/a/b/"', "/a/../a/b/x", True, id="regex-dots-gone"
        ),
        pytest.param(r'LocationMatch "\.jpg$"', "/a.jpg\n", True, id="dollar-newline"),
        pytest.param(r'LocationMatch "\.jpg\$"', "/a.jpg$", True, id="escaped-dollar"),
        pytest.param(
            r'LocationMatch "\.jpg\$"', "/a.jpg", False, id="escaped-dollar-no"
        ),
        pytest.param(r'LocationMatch "\d\.jpg$"', "/1.jpg", True, id="class-tail"),
        pytest.param(r'LocationMatch "\d\.jpg$"', "/a.jpg", False, id="class-tail-no"),
    ],
)
def test_location_regex_uses_search_on_merged_path(
    opening: str, path: str, expected: bool
) -> None:
    config = parse_config(f"<{opening}>\n AllowReproxy On\n</{opening.split()[0]}>\n")
    assert bool(matched(config, path)) is expected


def test_location_path_is_script_name_plus_path_info() -> None:
    config = parse_config(section("Location", "/app/private"))
    env = environ("/private", SCRIPT_NAME="/app")
    assert config.resolve(env).allow_reproxy is True
    assert config.explain(env).url_path == "/app/private"


def test_empty_url_path_is_root() -> None:
    config = parse_config(section("Location", "/"))
    assert config.explain(environ("")).url_path == "/"
    assert config.resolve(environ("")).allow_reproxy is True


def test_location_not_starting_with_slash_warns() -> None:
    config = parse_config(section("Location", "private"))
    assert any("can never match" in w for w in config.warnings)
    assert matched(config, "/private") == []


# -- <Directory>, <Files> ----------------------------------------------------------


@pytest.mark.parametrize(
    ("opening", "path", "expected"),
    [
        pytest.param("Directory /srv/www", "/", True, id="root-itself"),
        pytest.param("Directory /srv/www", "/a/b.txt", True, id="below"),
        pytest.param("Directory /srv/www/", "/a/b.txt", True, id="trailing-slash"),
        pytest.param("Directory /srv", "/a", True, id="ancestor"),
        pytest.param("Directory /srv/ww", "/a", False, id="component-boundary"),
        pytest.param("Directory /srv/www/a", "/ab/c", False, id="sub-boundary"),
        pytest.param("Directory /srv/www/a", "/a", True, id="last-segment-counts"),
        pytest.param("Directory /", "/x", True, id="slash-matches-all"),
        pytest.param("Directory /srv/*/img", "/img/x.png", True, id="glob-component"),
        pytest.param("Directory /srv/w*", "/x", True, id="glob-prefix"),
        pytest.param("Directory /*/img", "/img/x", False, id="glob-same-depth"),
        pytest.param("Directory /srv/www/*", "/", False, id="glob-needs-component"),
        pytest.param(
            'DirectoryMatch "^/srv/www/img/$"', "/img/a.png", False, id="re-full-path"
        ),
        pytest.param('DirectoryMatch "^/srv/www/img/$"', "/img/", True, id="re-slash"),
        pytest.param('DirectoryMatch "^/srv/www/img$"', "/img", True, id="re-no-slash"),
        pytest.param(
            r'DirectoryMatch "^/srv/www/img/a\.png$"', "/img/a.png", True, id="re-file"
        ),
        pytest.param('DirectoryMatch "/[0-9]+/"', "/12/x/y", True, id="re-search"),
        pytest.param('DirectoryMatch "/[0-9]+/"', "//12", False, id="re-search-miss"),
        pytest.param('Directory ~ "^/srv/www/$"', "/", True, id="tilde-form"),
    ],
)
def test_directory_matching_under_document_root(
    opening: str, path: str, expected: bool
) -> None:
    text = f"<{opening}>\n AllowReproxy On\n</{opening.split()[0]}>\n"
    config = parse_config(text, document_root="/srv/www")
    assert bool(matched(config, path)) is expected


@pytest.mark.parametrize(
    ("opening", "path", "expected"),
    [
        pytest.param("Files secret.txt", "/a/secret.txt", True, id="plain"),
        pytest.param("Files secret.txt", "/secret.txt/x", False, id="last-segment"),
        pytest.param("Files secret.txt", "/a/secret.txt2", False, id="plain-equality"),
        pytest.param("Files *.txt", "/a/b.txt", True, id="glob"),
        pytest.param("Files *.txt", "/a/b.txt.gz", False, id="glob-whole-name"),
        pytest.param("Files ?.txt", "/a/b.txt", True, id="glob-question"),
        pytest.param('FilesMatch "\\.(gif|jpe?g)$"', "/a.jpeg", True, id="regex"),
        pytest.param('FilesMatch "^b"', "/a/b.txt", True, id="regex-name-only"),
        pytest.param('FilesMatch "^a"', "/a/b.txt", False, id="regex-not-dir"),
        pytest.param('Files ~ "txt$"', "/b.txt", True, id="tilde-form"),
        pytest.param("Files x.txt", "/x.txt/", False, id="directory-has-no-name"),
    ],
)
def test_files_matching_last_segment(opening: str, path: str, expected: bool) -> None:
    text = f"<{opening}>\n AllowReproxy On\n</{opening.split()[0]}>\n"
    config = parse_config(text, document_root="/srv/www")
    assert bool(matched(config, path)) is expected


def test_no_filesystem_path_means_no_directory_or_files() -> None:
    text = section("Directory", "/") + section("Files", "*")
    assert matched(parse_config(text), "/x") == []


# -- merge order -----------------------------------------------------------------


def test_shortest_directory_first_whatever_the_file_order() -> None:
    text = (
        section("Directory", "/srv/www/a/b")
        + section("Directory", "/srv/www")
        + section("Directory", "/srv/www/a")
        + section("Directory", "/")
    )
    assert matched(parse_config(text, document_root="/srv/www"), "/a/b/c") == [
        '<Directory "/">',
        '<Directory "/srv/www">',
        '<Directory "/srv/www/a">',
        '<Directory "/srv/www/a/b">',
    ]


def test_merge_order_is_directory_regex_files_location() -> None:
    text = (
        section("Location", "/")
        + section("Files", "c.txt")
        + section("DirectoryMatch", "^/srv/")
        + section("Directory", "/srv/www/a")
        + section("LocationMatch", "c")
        + section("Directory", "/srv")
        + section("FilesMatch", "txt$")
    )
    assert matched(parse_config(text, document_root="/srv/www"), "/a/c.txt") == [
        '<Directory "/srv">',
        '<Directory "/srv/www/a">',
        '<DirectoryMatch "^/srv/">',
        '<Files "c.txt">',
        '<FilesMatch "txt$">',
        '<Location "/">',
        '<LocationMatch "c">',
    ]


NESTED = """\
<Files *.txt>
  PreserveHeaders X-Top
</Files>
<Directory /srv/www/private>
  <Files secret.txt>
    AllowReproxy Off
  </Files>
</Directory>
<Directory /srv/www>
  AllowReproxy On
  <Files *.txt>
    PreserveHeaders X-Nested
  </Files>
</Directory>
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(
            "/private/secret.txt",
            [
                '<Directory "/srv/www">',
                '<Directory "/srv/www/private">',
                '<Files "*.txt">',
                '<Files "*.txt">',
                '<Files "secret.txt">',
            ],
            id="nested-after-top-level-in-parent-order",
        ),
        pytest.param(
            "/public/secret.txt",
            ['<Directory "/srv/www">', '<Files "*.txt">', '<Files "*.txt">'],
            id="nested-only-under-matching-parent",
        ),
    ],
)
def test_nested_files_apply_only_under_their_directory(
    path: str, expected: list[str]
) -> None:
    config = parse_config(NESTED, document_root="/srv/www")
    assert matched(config, path) == expected


def test_nested_files_merge_after_server_level_files() -> None:
    # core.c merge_core_dir_configs appends a directory's <Files> to the
    # server's, so the top-level X-Top comes first and the nested one wins.
    config = parse_config(NESTED, document_root="/srv/www")
    settings = config.resolve(environ("/public/a.txt"))
    assert settings.preserve_headers == ("X-Nested",)
    assert config.resolve(environ("/private/secret.txt")).allow_reproxy is False


def test_late_location_root_overrides_everything() -> None:
    text = """\
<Directory /srv/www>
  AllowReproxy Off
</Directory>
<Files *>
  AllowReproxy Off
</Files>
<Location /downloads>
  AllowReproxy Off
</Location>
<Location />
  AllowReproxy On
</Location>
"""
    config = parse_config(text, document_root="/srv/www")
    assert config.resolve(environ("/downloads/x")).allow_reproxy is True


def test_later_location_wins_in_file_order() -> None:
    text = """\
<Location />
  ReproxyMaxRedirects 1
</Location>
<Location /a>
  ReproxyMaxRedirects 2
</Location>
<Location />
  ReproxyMaxRedirects 3
</Location>
"""
    assert parse_config(text).resolve(environ("/a/x")).max_redirects == 3


# -- virtual hosts ------------------------------------------------------------------

VHOSTS = """\
ReproxyMaxRedirects 1
<VirtualHost *:80>
  ServerName www.example.com
  ServerAlias example.com
  ReproxyMaxRedirects 2
</VirtualHost>
<VirtualHost *:80>
  ServerName other.example.org
  ServerAlias *.cdn.example.org
  ReproxyMaxRedirects 3
</VirtualHost>
<VirtualHost *:8080>
  ServerName www.example.com
  ReproxyMaxRedirects 4
</VirtualHost>
<VirtualHost _default_:443>
  ServerName secure.example.com
  ReproxyMaxRedirects 5
</VirtualHost>
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({"HTTP_HOST": "www.example.com"}, 2, id="by-host"),
        pytest.param({"HTTP_HOST": "WWW.Example.COM"}, 2, id="case-insensitive"),
        pytest.param({"HTTP_HOST": "www.example.com."}, 2, id="trailing-dot"),
        pytest.param({"HTTP_HOST": "example.com:80"}, 2, id="alias-with-port"),
        pytest.param({"HTTP_HOST": "other.example.org"}, 3, id="second-vhost"),
        pytest.param({"HTTP_HOST": "a.b.cdn.example.org"}, 3, id="alias-wildcard"),
        pytest.param({"HTTP_HOST": "cdn.example.org"}, 2, id="wildcard-needs-dot"),
        pytest.param({"HTTP_HOST": "unknown.test"}, 2, id="default-is-first"),
        pytest.param({"HTTP_HOST": "www.example.com:8080"}, 4, id="by-port"),
        pytest.param({"HTTP_HOST": "other.example.org:8080"}, 4, id="port-default"),
        pytest.param({"HTTP_HOST": "x:9999"}, 1, id="no-vhost-on-port"),
        pytest.param(
            {"HTTP_HOST": "secure.example.com", "wsgi.url_scheme": "https"},
            5,
            id="scheme-default-port",
        ),
        pytest.param(
            {"HTTP_HOST": "other.example.org", "SERVER_PORT": "8080"},
            3,
            id="host-port-beats-server-port",
        ),
        pytest.param(
            {"SERVER_NAME": "other.example.org", "SERVER_PORT": "80"},
            3,
            id="server-name-without-host",
        ),
        pytest.param(
            {"SERVER_NAME": "www.example.com", "SERVER_PORT": "8080"},
            4,
            id="server-port-without-host",
        ),
        pytest.param({"HTTP_HOST": "[::1]:443"}, 5, id="ipv6-literal"),
        pytest.param({"HTTP_HOST": "www.example.com:http"}, 2, id="bad-port"),
    ],
)
def test_virtual_host_chosen_by_host_and_port(
    env: dict[str, str], expected: int
) -> None:
    config = parse_config(VHOSTS)
    base = environ("/")
    base.update(env)
    assert config.resolve(base).max_redirects == expected


def test_unknown_port_considers_every_virtual_host() -> None:
    config = parse_config(VHOSTS)
    env = {"PATH_INFO": "/", "SERVER_NAME": "secure.example.com"}
    assert config.resolve(env).max_redirects == 5
    assert config.explain(env).port is None


def test_ipv6_and_wildcard_addresses_match_any_address() -> None:
    text = """\
<VirtualHost [::1]:8000 192.0.2.1>
  ServerName a.test
  ReproxyMaxRedirects 7
</VirtualHost>
"""
    config = parse_config(text)
    assert config.resolve(environ("/", host="b.test:9")).max_redirects == 7
    explanation = config.explain(environ("/", host="[::1]:8000"))
    assert explanation.host == "[::1]"
    assert explanation.port == 8000


def test_virtual_host_sections_apply_after_main_server_ones() -> None:
    text = """\
<VirtualHost *:80>
  ServerName a.test
  <Location />
    ReproxyMaxRedirects 2
  </Location>
  <Directory /srv>
    ReproxyMaxRedirects 4
  </Directory>
</VirtualHost>
<Location />
  ReproxyMaxRedirects 1
</Location>
<Directory /srv>
  ReproxyMaxRedirects 3
</Directory>
"""
    config = parse_config(text, document_root="/srv")
    env = environ("/x", host="a.test")
    assert [s.lineno for s in config.explain(env).sections] == [13, 6, 10, 3]
    assert config.resolve(env).max_redirects == 2
    assert config.resolve(environ("/x", host="a.test:81")).max_redirects == 1


def test_bad_virtual_host_port_is_a_warning() -> None:
    config = parse_config("<VirtualHost *:http>\n</VirtualHost>\n")
    assert any("bad port" in w for w in config.warnings)


# -- merging ------------------------------------------------------------------------

MERGE = """\
<Location />
  AllowReproxy On
  ReproxyMaxRedirects 2
</Location>
<Location /downloads>
  PreserveHeaders Content-Type
</Location>
"""


@pytest.mark.parametrize(
    ("merge", "expected"),
    [
        pytest.param(
            "field", Settings(True, ("Content-Type",), max_redirects=2), id="field"
        ),
        pytest.param("replace", Settings(False, ("Content-Type",)), id="replace"),
    ],
)
def test_merge_field_keeps_inherited_replace_resets(
    merge: Any, expected: Settings
) -> None:
    config = parse_config(MERGE, merge=merge)
    assert config.merge == merge
    assert config.resolve(environ("/downloads/1")) == expected
    assert config.resolve(environ("/other")).allow_reproxy is True


def test_replace_mode_applies_to_virtual_host_directives() -> None:
    text = "AllowReproxy On\n<VirtualHost *>\n  ReproxyMaxRedirects 3\n</VirtualHost>\n"
    assert parse_config(text).resolve(environ()).allow_reproxy is True
    replaced = parse_config(text, merge="replace").resolve(environ())
    assert (replaced.allow_reproxy, replaced.max_redirects) == (False, 3)


def test_server_level_directives_are_defaults() -> None:
    config = parse_config("AllowReproxy On\nReproxyTimeout 1 2\n" + MERGE)
    settings = config.resolve(environ("/"))
    assert (settings.connect_timeout, settings.read_timeout) == (1.0, 2.0)
    assert settings.origin("allow_reproxy") == "<string>:4"


def test_unknown_merge_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="merge must be"):
        parse_config(MERGE, merge="deep")  # type: ignore[arg-type]


# -- filesystem path ----------------------------------------------------------------

ROOTS = """\
DocumentRoot /srv/main
<VirtualHost *:80>
  ServerName v.test
  DocumentRoot /srv/vhost
</VirtualHost>
"""


@pytest.mark.parametrize(
    ("document_root", "env", "expected"),
    [
        pytest.param(None, {"HTTP_HOST": "v.test"}, "/srv/vhost/a/b", id="vhost-root"),
        pytest.param(None, {"HTTP_HOST": "v.test:81"}, "/srv/main/a/b", id="main-root"),
        pytest.param("/app", {"HTTP_HOST": "v.test"}, "/app/a/b", id="argument-wins"),
        pytest.param("/app/", {}, "/app/a/b", id="argument-trailing-slash"),
        pytest.param("/", {}, "/a/b", id="argument-root"),
    ],
)
def test_document_root_precedence(
    document_root: str | None, env: dict[str, str], expected: str
) -> None:
    config = parse_config(ROOTS, document_root=document_root)
    base = environ("/a/b")
    base.update(env)
    assert config.explain(base).fs_path == expected


def test_script_filename_without_document_root() -> None:
    config = parse_config(section("Directory", "/srv/app") + section("Files", "*.wsgi"))
    env = environ("/x", SCRIPT_FILENAME="/srv/app//app.wsgi")
    assert config.explain(env).fs_path == "/srv/app/app.wsgi"
    assert matched(config, "/x", SCRIPT_FILENAME="/srv/app/app.wsgi") == [
        '<Directory "/srv/app">',
        '<Files "*.wsgi">',
    ]


def test_script_filename_wins_over_document_root() -> None:
    # SPEC §3: mod_wsgi's SCRIPT_FILENAME is the file Apache's own walk used
    config = parse_config(ROOTS, document_root="/app")
    env = environ("/x", SCRIPT_FILENAME="/srv/app/app.wsgi")
    assert config.explain(env).fs_path == "/srv/app/app.wsgi"
    assert config.explain(environ("/x")).fs_path == "/app/x"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/../../etc/passwd", "/srv/www/etc/passwd", id="dot-dot"),
        pytest.param("/a/../../..", "/srv/www/", id="dot-dot-to-root"),
        pytest.param("/a//b/./c/", "/srv/www/a/b/c/", id="normalised-keeps-slash"),
        pytest.param("../x", "/srv/www/x", id="relative"),
    ],
)
def test_dot_dot_never_escapes_the_root(path: str, expected: str) -> None:
    config = parse_config(section("Directory", "/etc"), document_root="/srv/www")
    explanation = config.explain(environ(path))
    assert explanation.fs_path == expected
    assert explanation.sections == ()


def test_with_document_root_is_a_copy() -> None:
    config = parse_config(section("Directory", "/srv/b"), document_root="/srv/a")
    moved = config.with_document_root(Path("/srv/b"))
    assert config.resolve(environ("/x")).allow_reproxy is False
    assert moved.resolve(environ("/x")).allow_reproxy is True
    assert (moved.document_root, moved.merge) == ("/srv/b", config.merge)
    assert moved.parsed is config.parsed


# -- the Config object ----------------------------------------------------------------


def test_load_config_reads_a_path(tmp_path: Path) -> None:
    conf = tmp_path / "reproxy.conf"
    conf.write_text(MERGE)
    for path in (conf, str(conf)):
        config = load_config(path, merge="replace", document_root=tmp_path)
        assert config.resolve(environ("/downloads/x")).allow_reproxy is False
        assert config.document_root == str(tmp_path)
        assert str(conf) in repr(config)


def test_ignored_and_warnings_come_from_the_parser() -> None:
    config = parse_config("Listen 80\n" + section("Location", "/"))
    assert [d.name for d in config.ignored] == ["Listen"]
    assert config.warnings == config.parsed.warnings


def test_explain_reports_vhost_and_paths() -> None:
    config = parse_config(VHOSTS + section("Location", "/a"), document_root="/srv")
    explanation = config.explain(environ("/a/b", host="example.com"))
    assert explanation.vhost is not None
    assert explanation.vhost.names[0] == "www.example.com"
    assert (explanation.url_path, explanation.fs_path) == ("/a/b", "/srv/a/b")
    assert explanation.settings == config.resolve(environ("/a/b", host="example.com"))
    assert [s.describe() for s in explanation.sections] == ['<Location "/a">']


def hand_made(pattern: str, *, kind: Any = "location", regex: bool = True) -> Config:
    bad = Section(kind, "LocationMatch", pattern, regex, Overrides(), "x.conf", 7, 1)
    return Config(ParsedConfig(Overrides(), None, (bad,), (), (), (), ()))


@pytest.mark.parametrize(
    ("pattern", "kind", "regex"),
    [
        pytest.param("(unclosed", "location", True, id="bad-regex"),
        pytest.param("/[z-a]", "location", False, id="bad-glob-range"),
        pytest.param("*[z-a]", "files", False, id="bad-files-range"),
        pytest.param("/srv/[z-a]", "directory", False, id="bad-directory-range"),
    ],
)
def test_pattern_that_does_not_compile_is_a_config_error(
    pattern: str, kind: str, regex: bool
) -> None:
    with pytest.raises(ConfigError) as info:
        hand_made(pattern, kind=kind, regex=regex)
    assert (info.value.filename, info.value.lineno) == ("x.conf", 7)


def test_cached_and_uncached_results_agree_across_threads() -> None:
    text = "".join(section("Location", f"/p{i}") for i in range(20))
    cached = Config(parse_text(text), cache_size=8)
    uncached = Config(parse_text(text), cache_size=0)
    paths = [f"/p{i // 3 % 25}/x" for i in range(200)]  # repeats hit, cycles evict
    expected = [uncached.resolve(environ(p)) for p in paths]
    results: list[list[Settings]] = []

    def work() -> None:
        results.append([cached.resolve(environ(p)) for p in paths])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4
    info = cached._lookup.cache_info()  # type: ignore[attr-defined]
    assert (info.maxsize, info.currsize) == (8, 8)
    assert info.hits > 0


# -- pattern translation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("regex", "prefix"),
    [
        pytest.param(r"^/files/(.*)\.jpg$", "/files/", id="group"),
        pytest.param(r"^/a\.b/c", "/a.b/c", id="escaped-dot"),
        pytest.param(r"^/files?/", "/file", id="optional"),
        pytest.param(r"^/ab*/", "/a", id="star"),
        pytest.param(r"^/ab{2}/", "/a", id="brace"),
        pytest.param(r"^/ab+/", "/ab", id="plus"),
        pytest.param(r"^/a/|^/b/", "", id="top-alternation"),
        pytest.param(r"^/a/(x|y)/", "/a/", id="group-alternation"),
        pytest.param(r"^/a/[|]/", "/a/", id="bar-in-class"),
        pytest.param(r"^/a/\|", "/a/|", id="escaped-bar"),
        pytest.param(r"/a/", "", id="unanchored"),
        pytest.param(r"(?i)^/a/", "", id="inline-flag"),
        pytest.param(r"^/a/\d", "/a/", id="class-escape"),
        pytest.param(r"^/a/[^|]/", "/a/", id="bar-in-negated-class"),
        pytest.param(r"^/a/[]|]/", "/a/", id="bar-after-bracket-in-class"),
    ],
)
def test_regex_literal_prefix(regex: str, prefix: str) -> None:
    assert regex_prefix(regex) == prefix


@pytest.mark.parametrize(
    ("glob", "name", "expected"),
    [
        pytest.param("[]]x", "]x", True, id="bracket-member"),
        pytest.param("[!]]x", "ax", True, id="negated-bracket-member"),
        pytest.param("[a-c]", "b", True, id="range"),
        pytest.param("[a-]", "-", True, id="trailing-dash"),
        pytest.param(r"\*", "*", True, id="escaped-star"),
        pytest.param(r"\*", "a", False, id="escaped-star-literal"),
        pytest.param("[abc", "[abc", True, id="unclosed-class-literal"),
        pytest.param("a.b", "axb", False, id="dot-literal"),
        pytest.param("a[/]b", "a/b", False, id="class-never-slash"),
        pytest.param(r"a\?", "a?", True, id="escaped-question"),
    ],
)
def test_glob_translation(glob: str, name: str, expected: bool) -> None:
    assert bool(re.fullmatch(glob_regex(glob), name)) is expected


@pytest.mark.parametrize(
    ("regex", "extension"),
    [
        pytest.param(r"\.php$", ".php", id="ext"),
        pytest.param(r"a\.tar\.gz$", ".gz", id="last-dot"),
        pytest.param(r"\.(php|cgi)$", "", id="group"),
        pytest.param(r"\.jpg$|\.png$", "", id="top-alternation"),
        pytest.param(r"(?m)\.jpg$", "", id="flags"),
        pytest.param(r"\.jpg\$", "", id="escaped-dollar"),
        pytest.param(r"\.jpg", "", id="no-dollar"),
        pytest.param(r"x\\.jpg$", "", id="escaped-backslash-then-any"),
        pytest.param(r"/a\.b/c$", "", id="dot-before-slash"),
        pytest.param(r"\d\.jpg$", ".jpg", id="class-escape-before"),
    ],
)
def test_regex_extension_key(regex: str, extension: str) -> None:
    assert regex_extension(regex) == extension


@pytest.mark.parametrize(
    ("glob", "extension"),
    [
        pytest.param("*.php", ".php", id="ext"),
        pytest.param("file?.txt", ".txt", id="question"),
        pytest.param("a.*", "", id="star-last"),
        pytest.param(r"*\.txt", ".txt", id="escaped-dot"),
        pytest.param(r"*\*.txt", ".txt", id="escaped-star"),
        pytest.param(r"*.t\xt", "", id="escape-cuts"),
    ],
)
def test_glob_extension_key(glob: str, extension: str) -> None:
    assert glob_extension(glob) == extension


# -- properties ----------------------------------------------------------------------

text_values = st.text(st.characters(codec="latin-1"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    path=text_values,
    script=text_values,
    host=st.one_of(st.none(), text_values),
    port=text_values,
    scheme=st.sampled_from(["http", "https", "ftp", ""]),
    filename=st.one_of(st.none(), text_values),
)
def test_resolve_never_raises(
    path: str,
    script: str,
    host: str | None,
    port: str,
    scheme: str,
    filename: str | None,
) -> None:
    env = environ(path, host=host, SCRIPT_NAME=script, SERVER_PORT=port)
    env["wsgi.url_scheme"] = scheme
    if filename is not None:
        env["SCRIPT_FILENAME"] = filename
    for config in (RANDOM_BASE, RANDOM_NO_ROOT):
        assert isinstance(config.resolve(env), Settings)
        assert isinstance(config.explain(env).sections, tuple)


RANDOM_BASE = parse_config(
    VHOSTS
    + NESTED
    + section("Location", "/")
    + section("LocationMatch", "^/a/(b|c)")
    + section("Location", "/static/*.css")
    + section("DirectoryMatch", "^/srv/www/[0-9]+/")
    + section("Files", "[!a]*"),
    document_root="/srv/www",
)
RANDOM_NO_ROOT = RANDOM_BASE.with_document_root(None)

segment = st.sampled_from(["a", "b", "ab", "c", "a.b"])
glob_segment = st.sampled_from(
    ["a", "b", "*", "a*", "?", "[ab]", "[!a]b", "*.b", "a.*", "*.ab"]
)
path_segment = st.sampled_from(["a", "b", "ab", "c", "", "a.b", "x.ab", "c.b"])


@st.composite
def location(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(
        st.sampled_from(["plain", "glob", "regex", "re-end", "re-any", "re-ext"])
    )
    parts = draw(st.lists(glob_segment if kind == "glob" else segment, max_size=3))
    slash = draw(st.sampled_from(["", "/"]))
    body = "/" + "/".join(parts) + slash
    if kind == "re-ext":
        return "regex", draw(st.sampled_from([r"\.b$", r"a\.b$", r"\.(b|ab)$", "b$"]))
    if kind.startswith("re"):
        body = body.replace(".", r"\.")
        return "regex", {"regex": "^" + body, "re-end": f"^{body}$"}.get(kind, body)
    return kind, body.replace("/", draw(st.sampled_from(["/", "//"])))


files_pattern = st.one_of(
    st.tuples(st.just("plain"), st.sampled_from(["a.b", "b", "x.ab", "c"])),
    st.tuples(
        st.just("glob"),
        st.sampled_from(["*.b", "*.ab", "a.*", "?.b", "[!a]*", "*", "c*.b"]),
    ),
    st.tuples(
        st.just("regex"),
        st.sampled_from([r"\.b$", "^a", "b$", r"\.ab$", r"(?i)\.B$", r"\.a|b$"]),
    ),
)


def oracle(kind: str, pattern: str, path: str) -> bool:
    """Apache's rules for a <Location>, written out plainly, one at a time."""
    merged = re.sub("/+", "/", path)
    if kind == "regex":
        return re.search(pattern, merged) is not None
    pattern = re.sub("/+", "/", pattern)
    if kind == "glob" and any(c in pattern for c in "*?["):
        want, have = pattern.split("/"), merged.split("/")
        return len(want) == len(have) and all(
            fnmatch.fnmatchcase(h, w) for w, h in zip(want, have, strict=True)
        )
    return merged.startswith(pattern) and (
        pattern.endswith("/")
        or len(merged) == len(pattern)
        or merged[len(pattern)] == "/"
    )


def files_oracle(kind: str, pattern: str, path: str) -> bool:
    """Apache's rules for a <Files>: the last segment of the path."""
    name = re.sub("/+", "/", path).rsplit("/", 1)[1]
    if kind == "regex":
        return re.search(pattern, name) is not None
    return fnmatch.fnmatchcase(name, pattern)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    locations=st.lists(location(), max_size=12),
    files=st.lists(files_pattern, max_size=6),
    path=st.lists(path_segment, max_size=5).map(lambda parts: "/" + "/".join(parts)),
)
def test_index_agrees_with_testing_every_section(
    locations: list[tuple[str, str]], files: list[tuple[str, str]], path: str
) -> None:
    blocks = []
    for i, (kind, pattern) in enumerate(locations + files):
        tag = "Location" if i < len(locations) else "Files"
        tag += "Match" if kind == "regex" else ""
        blocks.append(f'<{tag} "{pattern}">\n  ReproxyMaxRedirects {i}\n</{tag}>\n')
    config = parse_config("".join(blocks), document_root="/")
    explanation = config.explain(environ(path))
    found = [s.overrides.values[0][1] for s in explanation.sections]
    first = len(locations)
    expected = [first + i for i, s in enumerate(files) if files_oracle(*s, path)]
    expected += [i for i, s in enumerate(locations) if oracle(*s, path)]
    assert found == expected


some_overrides = st.sampled_from(
    [
        Overrides(),
        Overrides((("allow_reproxy", True),), (("allow_reproxy", "a:1"),)),
        Overrides(
            (("allow_reproxy", False), ("max_redirects", 2)),
            (("allow_reproxy", "b:2"), ("max_redirects", "b:3")),
        ),
        Overrides((("preserve_headers", ("X-A",)),), (("preserve_headers", "c:4"),)),
    ]
)


@given(
    server=some_overrides,
    sections=st.lists(some_overrides, max_size=6),
    replace=st.booleans(),
)
def test_fold_equals_applying_each_section_in_turn(
    server: Overrides, sections: list[Overrides], replace: bool
) -> None:
    base = server.apply(DEFAULT_SETTINGS)
    entries = [
        Entry(Section("location", "Location", "/", False, o, "f", 1, i), (3, i), bool)
        for i, o in enumerate(sections)
    ]
    expected = base
    for overrides in sections:
        expected = overrides.apply(expected, replace=replace)
    folded = _fold(base, entries, replace)
    assert (folded, folded.origins) == (expected, expected.origins)


# -- against Apache itself -------------------------------------------------------
#
# One config text serves both: every section carries a mod_headers line that
# appends its line number to ``X-Order`` when Apache merges it (mod_headers
# concatenates the actions of merged sections, so the header lists them in
# merge order), and each virtual host names itself in ``X-V``.  Our parser
# ignores ``Header``, so explain() must list the same sections in the same
# order and choose the same virtual host, for real files on disk.

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")

SITE_FILES = [
    "private1/f.txt",
    "private1other",
    "private2/f.txt",
    "static/s.css",
    "static/sub/s.css",
    "a/b/c.txt",
    "a/x.jpg",
    "a/c/z.jpg",
    "d/b/q.txt",
]

SITE_SECTIONS = [
    ("Location", "/"),
    ("Location", "/private1"),
    ("Location", "/private2/"),
    ("Location", "/static/*.css"),
    ("LocationMatch", r'"\.jpg$"'),
    ("LocationMatch", '"^/a/(b|c)/"'),
    ("Directory", "{www}/a"),
    ("Directory", "{www}"),
    ("DirectoryMatch", '"^{www_re}/a/b/$"'),
    ("Directory", "{www}/*/b"),
    # nested <Files> merge after server-level ones whatever the file order
    ("Directory", "{www}/a/b", ("Files", "c.txt")),
    ("Files", '"*.txt"'),
    ("FilesMatch", r'"^c\."'),
]


def _site_config(root: Path, ports: list[int]) -> tuple[str, set[int]]:
    """The Apache config text, and the lines of the sections it marks."""
    www = str(root / "www")
    lines = [
        f"ServerRoot {root}",
        f"LoadModule mpm_prefork_module {MODULES}/mod_mpm_prefork.so",
        f"LoadModule authz_core_module {MODULES}/mod_authz_core.so",
        f"LoadModule headers_module {MODULES}/mod_headers.so",
        f"PidFile {root}/httpd.pid",
        f"ErrorLog {root}/error.log",
        "User www-data",
        "Group www-data",
        *(f"Listen 127.0.0.1:{port}" for port in ports),
        "ServerName localhost",
        f"DocumentRoot {www}",
        "<Directory />",
        "  Require all granted",
        "</Directory>",
    ]
    marked: set[int] = set()

    def add(tag: str, arg: str, *nested: tuple[str, str]) -> None:
        lines.append(f"<{tag} {arg.format(www=www, www_re=re.escape(www))}>")
        line = len(lines)
        marked.add(line)
        lines.append(f"  Header always append X-Order {line}")
        for inner in nested:
            add(*inner)
        lines.append(f"</{tag}>")

    for tag, arg, *nested in SITE_SECTIONS:
        add(tag, arg, *nested)
    # ports[0]: two name-based hosts; ports[1]: one; ports[2]: main server only
    vhosts = [
        (ports[0], "one.test", "*.wild.test"),
        (ports[0], "two.test", "two.example b.wild.test"),
        (ports[1], "one.test", "x.wild.test"),
    ]
    for port, name, alias in vhosts:
        lines += [
            f"<VirtualHost *:{port}>",
            f"  ServerName {name}",
            f"  ServerAlias {alias}",
            f"  Header always set X-V {len(lines) + 1}",
        ]
        if name == "two.test":
            add("Location", "/private1")
            add("Directory", "{www}/a")
            add("Files", '"*.jpg"')
        lines.append("</VirtualHost>")
    return "\n".join(lines) + "\n", marked


@dataclass
class ApacheSite:
    ports: list[int]
    config: Config
    marked: set[int]

    def ask(self, path: str, host: str, port: int) -> tuple[list[int], str | None]:
        """The sections Apache merged (lines, in order); its virtual host's line."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            response.read()
            headers = response.getheaders()
        finally:
            conn.close()
        values = {k.lower(): v for k, v in headers}
        order = [int(n) for n in values.get("x-order", "").split(",") if n.strip()]
        return order, values.get("x-v")


@pytest.fixture(scope="module")
def apache_site() -> Iterator[ApacheSite]:
    if not (APACHE.exists() and (MODULES / "mod_headers.so").exists()):
        pytest.skip("Debian apache2 (with mod_headers) not installed")
    # Apache's child runs as www-data: a world-readable tree outside /root.
    root = Path(tempfile.mkdtemp(prefix="resolver-apache-"))
    try:
        for name in SITE_FILES:
            (root / "www" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "www" / name).write_text(name)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        ports = []
        for _ in range(3):
            with socket.socket() as sock:  # Apache cannot report a port 0 bind
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
        text, marked = _site_config(root, ports)
        (root / "httpd.conf").write_text(text)
        proc = subprocess.Popen(
            [str(APACHE), "-X", "-f", str(root / "httpd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    for port in ports:
                        socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log = (root / "error.log").read_text(errors="replace")
                        pytest.fail(f"apache2 did not start:\n{log}")
                    time.sleep(0.05)
            config = parse_config(text, modules=set())
            yield ApacheSite(ports, config, marked)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/private1/f.txt", id="prefix"),
        pytest.param("/private1other", id="prefix-not-mid-segment"),
        pytest.param("/private2/f.txt", id="slash-prefix"),
        pytest.param("/private2", id="slash-prefix-needs-slash"),
        pytest.param("/static/s.css", id="glob"),
        pytest.param("/static/sub/s.css", id="glob-not-slash"),
        pytest.param("/a/b/c.txt", id="directories-files-nested"),
        pytest.param("//a//b//c.txt", id="merged-slashes"),
        pytest.param("/x/../a/b/c.txt", id="dot-dot"),
        pytest.param("/a/x.jpg", id="regex-location"),
        pytest.param("/a/c/z.jpg", id="regex-group"),
        pytest.param("/d/b/q.txt", id="glob-directory"),
    ],
)
@pytest.mark.parametrize(
    "host",
    [
        "one.test",
        "two.test",
        "x.wild.test",
        "b.wild.test",
        "unknown.test",
        "two.example",
    ],
)
@pytest.mark.parametrize("which", [0, 1, 2], ids=["two-vhosts", "one-vhost", "none"])
def test_matches_what_apache_applies(
    apache_site: ApacheSite, path: str, host: str, which: int
) -> None:
    port = apache_site.ports[which]
    host = f"{host}:{port}"
    order, vhost = apache_site.ask(path, host, port)
    explanation = apache_site.config.explain(environ(path, host=host))
    ours = [s.lineno for s in explanation.sections if s.lineno in apache_site.marked]
    chosen = None if explanation.vhost is None else str(explanation.vhost.lineno)
    assert (ours, chosen) == (order, vhost)
