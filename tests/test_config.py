"""The Apache-syntax parser: syntax rules, includes, conditionals, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_reproxy.config.lexer import logical_lines, split_words
from wsgi_reproxy.config.parse import parse_file, parse_text
from wsgi_reproxy.exceptions import ConfigError

SAMPLES = Path(__file__).resolve().parent.parent / "sample_conf"


def values(text: str, **kwargs: object) -> dict[str, object]:
    """The server-level values a config text sets."""
    return dict(parse_text(text, "t.conf", **kwargs).overrides.values)  # type: ignore[arg-type]


def error(text: str, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_text(text, "t.conf", **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# -- lexing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A b\n", [(1, "A b")], id="plain"),
        pytest.param("A b \\\n  c\n", [(1, "A b   c")], id="continuation-joins"),
        pytest.param(
            "A b\\\\\nC\n", [(1, "A b\\\\"), (2, "C")], id="double-backslash-ends"
        ),
        pytest.param("  # comment\nA\n", [(2, "A")], id="comment-after-blanks"),
        pytest.param(
            "A # not a comment\n", [(1, "A # not a comment")], id="hash-mid-line"
        ),
        pytest.param("# c \\\nA\nB\n", [(3, "B")], id="continued-comment-swallows"),
        pytest.param("\n\n  \nA\n", [(4, "A")], id="blank-lines-counted"),
        pytest.param("A \\\n", [(1, "A")], id="continuation-at-eof"),
        pytest.param("A\r\nB\r\n", [(1, "A"), (2, "B")], id="crlf"),
    ],
)
def test_logical_lines(text: str, expected: list[tuple[int, str]]) -> None:
    assert [(line.lineno, line.text) for line in logical_lines(text, "f")] == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("a  b\tc", ["a", "b", "c"], id="blanks"),
        pytest.param('"a b" c', ["a b", "c"], id="double-quotes"),
        pytest.param("'a b' c", ["a b", "c"], id="single-quotes"),
        pytest.param(r'"a \"b\" c"', ['a "b" c'], id="escaped-double-quote"),
        pytest.param(r'"a\\b"', ["a\\b"], id="escaped-backslash"),
        pytest.param(r'"a\nb"', ["a\\nb"], id="other-escapes-literal"),
        pytest.param(r"'it\'s'", ["it's"], id="escaped-single-quote"),
        pytest.param(r"'say \"x\"'", ['say \\"x\\"'], id="other-quote-not-escaped"),
        pytest.param('a"b c', ['a"b', "c"], id="quote-inside-word-literal"),
        pytest.param(
            '"unterminated x', ["unterminated x"], id="unterminated-runs-to-end"
        ),
        pytest.param('""', [""], id="empty-quoted-word"),
    ],
)
def test_split_words(text: str, words: list[str]) -> None:
    assert split_words(text) == words


# -- our directives ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("AllowReproxy on", {"allow_reproxy": True}, id="on-lower"),
        pytest.param(
            "allowreproxy OFF", {"allow_reproxy": False}, id="names-case-insensitive"
        ),
        pytest.param(
            "PreserveHeaders Content-Type\nPreserveHeaders X-A X-B",
            {"preserve_headers": ("Content-Type", "X-A", "X-B")},
            id="preserve-repeated-lines-add",
        ),
        pytest.param(
            'PreserveHeaders "Content-Disposition"',
            {"preserve_headers": ("Content-Disposition",)},
            id="preserve-quoted",
        ),
        pytest.param(
            "ReproxyTimeout 2 60",
            {"connect_timeout": 2.0, "read_timeout": 60.0},
            id="timeouts",
        ),
        pytest.param("ReproxyTimeout 0.5", {"connect_timeout": 0.5}, id="connect-only"),
        pytest.param("ReproxyMaxRedirects 3", {"max_redirects": 3}, id="redirects"),
        pytest.param(
            "ReproxyForwardHeaders Range Cookie",
            {"forward_headers": ("Range", "Cookie")},
            id="forward-replaces-default",
        ),
        pytest.param(
            "ReproxyForwardHeaders None", {"forward_headers": ()}, id="forward-none"
        ),
        pytest.param(
            "ReproxyAllowTargets http://10.0.0.*:7500/\nReproxyAllowTargets https://*.b.internal/",
            {"allow_targets": ("http://10.0.0.*:7500/", "https://*.b.internal/")},
            id="targets-add",
        ),
        pytest.param(
            "ReproxyFileRoot /srv/a /srv/b/../c",
            {"file_roots": ("/srv/a", "/srv/c")},
            id="roots",
        ),
    ],
)
def test_directive_values(text: str, expected: dict[str, object]) -> None:
    assert values(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "AllowReproxy maybe",
            "t.conf:1: AllowReproxy must be On or Off",
            id="on-off",
        ),
        pytest.param(
            "\nAllowReproxy",
            "t.conf:2: AllowReproxy must be On or Off",
            id="on-off-missing",
        ),
        pytest.param(
            "AllowReproxy on off",
            "t.conf:1: AllowReproxy must be On or Off",
            id="on-off-two",
        ),
        pytest.param(
            "PreserveHeaders",
            "t.conf:1: PreserveHeaders needs at least one header name",
            id="preserve-empty",
        ),
        pytest.param(
            "PreserveHeaders 'Bad Header'",
            "t.conf:1: PreserveHeaders: 'Bad Header' is not a header name",
            id="preserve-bad",
        ),
        pytest.param(
            "ReproxyTimeout",
            "t.conf:1: ReproxyTimeout takes CONNECT [READ [TOTAL]]",
            id="timeout-empty",
        ),
        pytest.param(
            "ReproxyTimeout soon",
            "t.conf:1: ReproxyTimeout takes CONNECT [READ [TOTAL]], positive numbers of seconds, not 'soon'",
            id="timeout-word",
        ),
        pytest.param("ReproxyTimeout 0", "not '0'", id="timeout-zero"),
        pytest.param("ReproxyTimeout nan", "not 'nan'", id="timeout-nan"),
        pytest.param(
            "ReproxyTimeout 1 2 3 4",
            "t.conf:1: ReproxyTimeout takes CONNECT [READ [TOTAL]]",
            id="timeout-four",
        ),
        pytest.param(
            "ReproxyMaxRedirects -1",
            "t.conf:1: ReproxyMaxRedirects takes a whole number from 0 to 20",
            id="redirects-negative",
        ),
        pytest.param(
            "ReproxyMaxRedirects 99",
            "ReproxyMaxRedirects takes a whole number",
            id="redirects-big",
        ),
        pytest.param(
            "ReproxyAllowTargets",
            "t.conf:1: ReproxyAllowTargets needs at least one URL pattern",
            id="targets-empty",
        ),
        pytest.param(
            "ReproxyAllowTargets ftp://x/",
            "t.conf:1: bad ReproxyAllowTargets pattern 'ftp://x/': scheme 'ftp' not allowed",
            id="targets-scheme",
        ),
        pytest.param(
            "ReproxyFileRoot",
            "t.conf:1: ReproxyFileRoot needs at least one directory",
            id="roots-empty",
        ),
        pytest.param(
            "ReproxyForwardHeaders a:b", "is not a header name", id="forward-bad"
        ),
    ],
)
def test_directive_errors_name_file_and_line(text: str, message: str) -> None:
    assert message in error(text)


def test_config_error_carries_filename_and_lineno() -> None:
    with pytest.raises(ConfigError) as info:
        parse_text("\n\nAllowReproxy maybe\n", "site.conf")
    assert (info.value.filename, info.value.lineno) == ("site.conf", 3)
    assert info.value.message == "AllowReproxy must be On or Off"


@pytest.mark.parametrize(
    "header", ["Content-Length", "content-range", "Connection", "Transfer-Encoding"]
)
def test_preserving_a_never_preserved_header_warns(header: str) -> None:
    parsed = parse_text(f"PreserveHeaders Content-Type {header}", "t.conf")
    assert [w for w in parsed.warnings if header in w and w.startswith("t.conf:1:")]


def test_allow_reproxy_without_allow_list_warns() -> None:
    parsed = parse_text("<Location />\nAllowReproxy On\n</Location>", "t.conf")
    assert any(
        w.startswith("t.conf:2:") and "ReproxyAllowTargets" in w
        for w in parsed.warnings
    )
    parsed = parse_text(
        "ReproxyAllowTargets http://127.0.0.1/\n<Location />\nAllowReproxy On\n</Location>"
    )
    assert parsed.warnings == ()


# -- sections ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "described"),
    [
        pytest.param("<Location /a>\n</Location>", '<Location "/a">', id="location"),
        pytest.param(
            "<location /a>\n</LOCATION>", '<Location "/a">', id="tags-case-insensitive"
        ),
        pytest.param(
            '<Location ~ "^/a">\n</Location>', '<Location ~ "^/a">', id="location-tilde"
        ),
        pytest.param(
            "<LocationMatch ^/a>\n</LocationMatch>",
            '<LocationMatch "^/a">',
            id="locationmatch",
        ),
        pytest.param(
            "<Directory /srv/>\n</Directory>", '<Directory "/srv/">', id="directory"
        ),
        pytest.param(
            '<Directory ~ "/x">\n</Directory>',
            '<Directory ~ "/x">',
            id="directory-tilde",
        ),
        pytest.param(
            "<DirectoryMatch /x>\n</DirectoryMatch>",
            '<DirectoryMatch "/x">',
            id="directorymatch",
        ),
        pytest.param(
            '<Files "a b.txt">\n</Files>', '<Files "a b.txt">', id="files-quoted"
        ),
        pytest.param(
            "<FilesMatch \\.iso$>\n</FilesMatch>",
            '<FilesMatch "\\.iso$">',
            id="filesmatch",
        ),
    ],
)
def test_section_kinds(text: str, described: str) -> None:
    (section,) = parse_text(text).sections
    assert section.describe() == described
    assert section.regex == ("~" in described or "Match" in described)


def test_section_records_know_where_they_came_from() -> None:
    parsed = parse_text("\n<Location /a>\n  AllowReproxy On\n</Location>\n", "x.conf")
    (section,) = parsed.sections
    assert (section.where, section.overrides.origins) == (
        "x.conf:2",
        (("allow_reproxy", "x.conf:3"),),
    )


def test_files_nested_in_directory_know_their_parent() -> None:
    parsed = parse_text(
        "<Directory /srv>\n<Files *.iso>\nAllowReproxy On\n</Files>\n</Directory>\n"
        "<Files *.txt>\n</Files>"
    )
    directory, nested, top = parsed.sections
    assert nested.parent == directory and top.parent is None
    assert [s.index for s in parsed.sections] == sorted(
        s.index for s in parsed.sections
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "<Location /a>\n</Files>",
            "t.conf:2: Expected </Location> but saw </Files>",
            id="mismatch",
        ),
        pytest.param(
            "<location /a>\n</files>",
            "Expected </Location> but saw </files>",
            id="mismatch-case",
        ),
        pytest.param(
            "<Location /a>\nAllowReproxy On\n",
            "t.conf:1: <Location> was not closed",
            id="unclosed",
        ),
        pytest.param(
            "</Location>",
            "t.conf:1: </Location> without matching <Location> section",
            id="stray-close",
        ),
        pytest.param(
            "<Location>\n</Location>",
            "t.conf:1: <Location> directive requires additional arguments",
            id="no-argument",
        ),
        pytest.param(
            "<Location /a /b>\n</Location>", "takes one argument", id="two-arguments"
        ),
        pytest.param(
            "<Location /a\n</Location>",
            "t.conf:1: <Location> directive missing closing '>'",
            id="missing-gt",
        ),
        pytest.param(
            "<LocationMatch (>\n</LocationMatch>",
            "t.conf:1: <LocationMatch> regex '(' does not compile",
            id="bad-regex",
        ),
        pytest.param(
            "<Location /a>\n<Location /b>\n</Location>\n</Location>",
            "t.conf:2: <Location> cannot occur within <Location> section",
            id="location-in-location",
        ),
        pytest.param(
            "<Directory /a>\n<Location /b>\n</Location>\n</Directory>",
            "cannot occur within <Directory> section",
            id="location-in-directory",
        ),
        pytest.param(
            "<VirtualHost *:80>\n<VirtualHost *:81>\n</VirtualHost>\n</VirtualHost>",
            "t.conf:2: <VirtualHost> cannot occur within <VirtualHost> section",
            id="vhost-in-vhost",
        ),
        pytest.param(
            "<VirtualHost>\n</VirtualHost>",
            "<VirtualHost> needs at least one address",
            id="vhost-no-address",
        ),
        pytest.param(
            "<IfDefine>\n</IfDefine>",
            "<IfDefine> takes one argument",
            id="ifdefine-no-argument",
        ),
        pytest.param(
            "<Proxy *>\n</Limit>",
            "Expected </Proxy> but saw </Limit>",
            id="foreign-mismatch",
        ),
        pytest.param(
            "<IfModule !x>\n<Location /a>\n</Files>\n</IfModule>",
            "Expected </Location>",
            id="mismatch-in-false-block",
        ),
        pytest.param("<>\n", "is not a section tag", id="empty-tag"),
        pytest.param("<Proxy *>\n" * 70, "nested too deeply", id="too-deep"),
    ],
)
def test_section_errors(text: str, message: str) -> None:
    assert message in error(text)


def test_unknown_directives_are_ignored_and_counted() -> None:
    parsed = parse_text(
        "ServerTokens Prod\n<Location />\nSetHandler x\nAllowReproxy On\n</Location>"
    )
    assert [(d.name, d.lineno) for d in parsed.ignored] == [
        ("ServerTokens", 1),
        ("SetHandler", 3),
    ]
    assert parsed.sections[0].overrides.values == (("allow_reproxy", True),)


def test_our_directive_inside_a_foreign_section_is_ignored_with_a_warning() -> None:
    parsed = parse_text("<Limit GET>\nAllowReproxy On\n</Limit>", "t.conf")
    assert parsed.overrides.values == ()
    assert parsed.warnings == ("t.conf:2: AllowReproxy inside <Limit> is ignored",)


# -- Define, IfDefine, IfModule -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "on"),
    [
        pytest.param(
            "<IfDefine X>\nAllowReproxy On\n</IfDefine>",
            {},
            False,
            id="ifdefine-undefined",
        ),
        pytest.param(
            "<IfDefine X>\nAllowReproxy On\n</IfDefine>",
            {"defines": {"X": ""}},
            True,
            id="ifdefine-caller",
        ),
        pytest.param(
            "Define X\n<IfDefine X>\nAllowReproxy On\n</IfDefine>",
            {},
            True,
            id="ifdefine-define",
        ),
        pytest.param(
            "<IfDefine !X>\nAllowReproxy On\n</IfDefine>",
            {},
            True,
            id="ifdefine-negated",
        ),
        pytest.param(
            "Define X\nUnDefine X\n<IfDefine X>\nAllowReproxy On\n</IfDefine>",
            {},
            False,
            id="undefine",
        ),
        pytest.param(
            "<IfModule mod_reproxy.c>\nAllowReproxy On\n</IfModule>",
            {"modules": set()},
            True,
            id="we-are-mod-reproxy",
        ),
        pytest.param(
            "<IfModule reproxy_module>\nAllowReproxy On\n</IfModule>",
            {"modules": set()},
            True,
            id="module-identifier",
        ),
        pytest.param(
            "<IfModule !mod_reproxy.c>\nAllowReproxy On\n</IfModule>",
            {},
            False,
            id="not-mod-reproxy",
        ),
        pytest.param(
            "<IfModule mod_ssl.c>\nAllowReproxy On\n</IfModule>",
            {},
            True,
            id="others-assumed-loaded",
        ),
        pytest.param(
            "<IfModule mod_ssl.c>\nAllowReproxy On\n</IfModule>",
            {"modules": {"mod_wsgi.c"}},
            False,
            id="caller-module-set",
        ),
        pytest.param(
            "<IfModule ssl_module>\nAllowReproxy On\n</IfModule>",
            {"modules": {"mod_ssl.c"}},
            True,
            id="module-name-forms-agree",
        ),
        pytest.param(
            "<IfModule !mod_ssl.c>\n<IfDefine !Y>\nAllowReproxy On\n</IfDefine>\n</IfModule>",
            {"modules": ()},
            True,
            id="nested-conditions",
        ),
        pytest.param(
            "<IfDefine X>\nDefine Y\n</IfDefine>\n<IfDefine Y>\nAllowReproxy On\n</IfDefine>",
            {},
            False,
            id="define-in-false-block-not-applied",
        ),
    ],
)
def test_conditionals(text: str, kwargs: dict[str, object], on: bool) -> None:
    assert values(text, **kwargs).get("allow_reproxy", False) is on


def test_false_block_values_are_not_validated() -> None:
    assert values("<IfModule !mod_reproxy.c>\nAllowReproxy maybe\n</IfModule>") == {}


def test_define_substitution_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WR_TEST_HEADER", "X-From-Env")
    parsed = parse_text(
        'Define H "Content-Type Content-Disposition"\n'
        "PreserveHeaders ${H} ${WR_TEST_HEADER}\n"
        "<Location ${BASE}/x>\n</Location>",
        "t.conf",
        defines={"BASE": "/api"},
    )
    assert dict(parsed.overrides.values)["preserve_headers"] == (
        "Content-Type",
        "Content-Disposition",
        "X-From-Env",
    )
    assert parsed.sections[0].pattern == "/api/x"


def test_undefined_variable_stays_and_warns() -> None:
    parsed = parse_text("<Location ${NOPE_WR_X}>\n</Location>", "t.conf")
    assert parsed.sections[0].pattern == "${NOPE_WR_X}"
    assert parsed.warnings == ("t.conf:1: config variable ${NOPE_WR_X} is not defined",)


# -- virtual hosts ----------------------------------------------------------------


def test_virtual_host_records() -> None:
    parsed = parse_text(
        "<VirtualHost *:80 [::1]:8080>\n"
        "ServerName https://WWW.Example.com:443\n"
        "ServerAlias example.com *.example.org\n"
        "DocumentRoot /srv/www\n"
        "AllowReproxy On\n"
        "<Location /a>\n</Location>\n"
        "</VirtualHost>\n"
        "<Location /b>\n</Location>"
    )
    (vhost,) = parsed.vhosts
    assert vhost.addresses == ("*:80", "[::1]:8080")
    assert vhost.names == ("www.example.com", "example.com", "*.example.org")
    assert vhost.document_root == "/srv/www"
    assert vhost.overrides.values == (("allow_reproxy", True),)
    assert [s.pattern for s in vhost.sections] == ["/a"]
    assert [s.pattern for s in parsed.sections] == ["/b"]


# -- includes ---------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_glob_alphabetical_relative_to_including_file(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "b.conf", "PreserveHeaders X-B\n")
    write(tmp_path / "conf.d" / "a.conf", "PreserveHeaders X-A\n")
    write(tmp_path / "conf.d" / ".hidden.conf", "PreserveHeaders X-Hidden\n")
    write(tmp_path / "conf.d" / "c.txt", "PreserveHeaders X-C\n")
    main = write(tmp_path / "main.conf", "Include conf.d/*.conf\n")
    parsed = parse_file(main)
    assert dict(parsed.overrides.values)["preserve_headers"] == ("X-A", "X-B")
    assert [Path(f).name for f in parsed.files] == ["main.conf", "a.conf", "b.conf"]


def test_include_glob_matches_dot_files_only_with_a_dot(tmp_path: Path) -> None:
    # httpd matches with APR_FNM_PERIOD: "*" does not match a leading dot.
    write(tmp_path / "conf.d" / ".hidden.conf", "PreserveHeaders X-Hidden\n")
    write(tmp_path / "conf.d" / "a.conf", "PreserveHeaders X-A\n")
    main = write(tmp_path / "main.conf", "Include conf.d/.*.conf\n")
    assert dict(parse_file(main).overrides.values)["preserve_headers"] == ("X-Hidden",)


def test_include_wildcard_in_a_directory_component(tmp_path: Path) -> None:
    write(tmp_path / "sites" / "b" / "site.conf", "PreserveHeaders X-B\n")
    write(tmp_path / "sites" / "a" / "site.conf", "PreserveHeaders X-A\n")
    write(tmp_path / "sites" / "c" / "other.conf", "PreserveHeaders X-C\n")
    write(tmp_path / "sites" / "file", "")  # not a directory: never descended
    main = write(tmp_path / "main.conf", "Include sites/*/site.conf\n")
    assert dict(parse_file(main).overrides.values)["preserve_headers"] == ("X-A", "X-B")


def test_unreadable_top_level_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        parse_file("bad\x00name.conf")


def test_include_relative_to_server_root(tmp_path: Path) -> None:
    write(tmp_path / "root" / "extra.conf", "AllowReproxy On\n")
    main = write(
        tmp_path / "elsewhere" / "main.conf",
        f"ServerRoot {tmp_path / 'root'}\nInclude extra.conf\n",
    )
    assert dict(parse_file(main).overrides.values) == {"allow_reproxy": True}


def test_include_directory_reads_every_file(tmp_path: Path) -> None:
    write(tmp_path / "d" / "1.conf", "PreserveHeaders X-1\n")
    write(tmp_path / "d" / "sub" / "2.conf", "PreserveHeaders X-2\n")
    main = write(tmp_path / "main.conf", "Include d\n")
    assert dict(parse_file(main).overrides.values)["preserve_headers"] == ("X-1", "X-2")


def test_include_inside_a_section_adds_to_that_section(tmp_path: Path) -> None:
    write(tmp_path / "inner.conf", "AllowReproxy On\n")
    main = write(
        tmp_path / "main.conf", "<Location /a>\nInclude inner.conf\n</Location>\n"
    )
    assert parse_file(main).sections[0].overrides.values == (("allow_reproxy", True),)


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.conf", "\nAllowReproxy maybe\n")
    main = write(tmp_path / "main.conf", "Include bad.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_file(main)
    assert str(info.value) == f"{bad}:2: AllowReproxy must be On or Off"


def test_section_must_close_in_its_own_file(tmp_path: Path) -> None:
    write(tmp_path / "open.conf", "<Location /a>\n")
    main = write(tmp_path / "main.conf", "Include open.conf\n</Location>\n")
    with pytest.raises(ConfigError, match="<Location> was not closed"):
        parse_file(main)


@pytest.mark.parametrize(
    ("line", "raises"),
    [
        pytest.param("Include missing.conf", True, id="include-missing-file"),
        pytest.param("Include nothing/*.conf", True, id="include-glob-no-match"),
        pytest.param("IncludeOptional missing.conf", False, id="optional-missing-file"),
        pytest.param(
            "IncludeOptional nothing/*.conf", False, id="optional-glob-no-match"
        ),
    ],
)
def test_include_missing(tmp_path: Path, line: str, raises: bool) -> None:
    main = write(tmp_path / "main.conf", f"{line}\n")
    if raises:
        with pytest.raises(ConfigError, match=r"main\.conf:1: Include: no"):
            parse_file(main)
    else:
        assert parse_file(main).files == (str(main),)


def test_include_bracket_without_close_is_a_file_not_a_wildcard(
    tmp_path: Path,
) -> None:
    # httpd's apr_fnmatch_test: "[" is a wildcard only with a closing "]".
    write(tmp_path / "a[1.conf", "PreserveHeaders X-Bracket\n")
    main = write(tmp_path / "main.conf", "Include a[1.conf\nInclude b[2.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_file(main)
    assert str(info.value) == (
        f"{main}:2: Include: no file matches {str(tmp_path / 'b[2.conf')!r}"
    )


def test_include_cycle_is_detected(tmp_path: Path) -> None:
    write(tmp_path / "a.conf", "Include b.conf\n")
    write(tmp_path / "b.conf", "\nInclude a.conf\n")
    with pytest.raises(ConfigError) as info:
        parse_file(tmp_path / "a.conf")
    assert "b.conf:2: Include cycle:" in str(info.value)


def test_same_file_included_twice_is_not_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "h.conf", "PreserveHeaders X-H\n")
    main = write(tmp_path / "main.conf", "Include h.conf\nInclude h.conf\n")
    assert dict(parse_file(main).overrides.values)["preserve_headers"] == ("X-H", "X-H")


def test_missing_top_level_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.conf: cannot read configuration"):
        parse_file(tmp_path / "nope.conf")


# -- samples and a real Apache tree ----------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(SAMPLES.rglob("*.conf")), ids=lambda p: str(p.relative_to(SAMPLES))
)
def test_every_sample_loads(path: Path) -> None:
    parsed = parse_file(path)
    # mod_reproxy's own example has no allow-list, and the conf.d snippets
    # rely on the one site.conf sets: the parser points that out, nothing else.
    assert all("no ReproxyAllowTargets" in w for w in parsed.warnings)
    assert parsed.sections or parsed.vhosts
    if path.name == "site.conf":
        assert parsed.warnings == ()


def test_minimal_sample_is_mod_reproxy_readme_example() -> None:
    (section,) = parse_file(SAMPLES / "minimal.conf").sections
    assert section.pattern == "/"
    assert dict(section.overrides.values) == {
        "allow_reproxy": True,
        "preserve_headers": ("Content-Type", "Content-Disposition"),
    }


def test_site_sample_follows_its_includes() -> None:
    parsed = parse_file(SAMPLES / "site.conf")
    assert [Path(f).name for f in parsed.files] == [
        "site.conf",
        "downloads.conf",
        "legacy-perlbal.conf",
    ]
    assert len(parsed.vhosts) == 2
    files = [s for v in parsed.vhosts for s in v.sections if s.kind == "files"]
    assert files and files[0].parent is not None


@pytest.mark.skipif(
    not os.path.exists("/etc/apache2/apache2.conf")
    and os.environ.get("WSGI_REPROXY_REQUIRE_APACHE") != "1",
    reason="Debian apache2 not installed",
)
def test_debian_apache_tree_loads() -> None:
    parsed = parse_file("/etc/apache2/apache2.conf")
    assert len(parsed.files) > 10  # mods-enabled, conf-enabled, sites-enabled
    assert len(parsed.ignored) > 100
    assert any(s.pattern == "/var/www/" for s in parsed.sections)
    assert len(parsed.vhosts) >= 1


# -- robustness ---------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "<Location /a>",
        "</Location>",
        "<Files x>",
        "</Files>",
        "<Directory /d>",
        "</Directory>",
        "<VirtualHost *:80>",
        "</VirtualHost>",
        "<IfDefine X>",
        "</IfDefine>",
        "<IfModule !m>",
        "</IfModule>",
        "<Proxy *>",
        "</Proxy>",
        "AllowReproxy On",
        "AllowReproxy",
        "PreserveHeaders A B",
        "ReproxyTimeout 1 x",
        "Define X",
        "${X}",
        "\\",
        "#",
        '"',
        "'",
        "<",
        ">",
        "</",
        "Include /nonexistent/*",
        "ReproxyAllowTargets http://*/",
        "<LocationMatch (>",
        "\x00",
        "\t",
        " ",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=20)), max_size=30))
def test_arbitrary_text_raises_only_config_error_with_a_line(pieces: list[str]) -> None:
    text = "\n".join(pieces)
    try:
        parse_text(text, "fuzz.conf")
    except ConfigError as exc:
        assert exc.filename is not None
        assert exc.lineno is not None and exc.lineno >= 1


def test_line_that_substitutes_to_nothing_is_skipped() -> None:
    # Found by the hypothesis test above: "Define X" then a line "${X}".
    assert values("Define X\n${X}\nAllowReproxy On") == {"allow_reproxy": True}
