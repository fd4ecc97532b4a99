"""URL -> filesystem path: the Alias family, UserDir, DocumentRoot (issue 13).

Each rule is httpd 2.4's (mod_alias.c ``alias_matches``/``try_alias_list``,
mod_wsgi's ``wsgi_hook_intercept``, mod_userdir.c ``translate_userdir``);
``tests/test_aliases_apache.py`` checks the same rules against a real Apache.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgi_reproxy import parse_config
from wsgi_reproxy.__main__ import main
from wsgi_reproxy.config.parse import parse_text
from wsgi_reproxy.config.suggest import one_edit_apart
from wsgi_reproxy.resolve.aliases import _Rule, alias_matches
from wsgi_reproxy.resolve.paths import merge_slashes
from wsgi_reproxy.resolve.reach import reaches


def environ(path: str, host: str | None = None, **extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    if host is not None:
        env["HTTP_HOST"] = host
    env.update(extra)
    return env


def mapped(text: str, path: str, **kwargs: Any) -> tuple[str | None, str]:
    """``(filesystem path, what mapped it)`` for *path* under config *text*."""
    explanation = parse_config(text).explain(environ(path, **kwargs))
    if explanation.mapped is None:
        return None, "none"
    return explanation.fs_path, explanation.mapped.how


MOD_ALIAS = """\
DocumentRoot /var/www
Alias /dl/special /srv/special
Alias /dl /srv/files
Alias /dl/late /srv/never
Alias /slash/ /srv/slash/
Alias /noslash /srv/slash/
Alias //multi//part /srv/multi
Alias /favicon.ico /srv/static/favicon.ico
ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/
AliasMatch ^/img/([a-z]+)/(\\d+)\\.png$ /srv/images/$1/$2.png
AliasMatch ^/swap/([^/]+)/([^/]+)$ /srv/$2/$1
AliasMatch "^/opt(/extra)?/(.*)" "/srv/opt/$1/$2"
AliasMatch ^/whole/.* /srv/all/$0
AliasMatch ^/lit/(.*) /srv/lit/\\$1
AliasMatch ^/nine/(.*) /srv/nine/$9x
ScriptAliasMatch ^/scripts/(\\w+)$ /srv/cgi/$1.cgi
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/dl/special/s", ("/srv/special/s", "Alias"), id="first-wins"),
        pytest.param("/dl/x", ("/srv/files/x", "Alias"), id="prefix"),
        pytest.param("/dl", ("/srv/files", "Alias"), id="exact"),
        pytest.param("/dl/", ("/srv/files/", "Alias"), id="exact-slash"),
        pytest.param("/dl/late/n", ("/srv/files/late/n", "Alias"), id="later-never"),
        pytest.param("/dlx", ("/var/www/dlx", "DocumentRoot"), id="not-mid-segment"),
        pytest.param("/slash", ("/var/www/slash", "DocumentRoot"), id="x-slash-not-x"),
        pytest.param("/slash/", ("/srv/slash/", "Alias"), id="x-slash-slash"),
        pytest.param("/slash/a", ("/srv/slash/a", "Alias"), id="x-slash-below"),
        pytest.param("/noslash/a", ("/srv/slash/a", "Alias"), id="slash-doubled"),
        pytest.param("/multi/part/m", ("/srv/multi/m", "Alias"), id="alias-slashes"),
        pytest.param("//dl//x", ("/srv/files/x", "Alias"), id="url-slashes"),
        pytest.param("/a/../dl/x", ("/srv/files/x", "Alias"), id="dot-dot-first"),
        pytest.param(
            "/favicon.ico", ("/srv/static/favicon.ico", "Alias"), id="to-a-file"
        ),
        pytest.param(
            "/cgi-bin/run.cgi", ("/usr/lib/cgi-bin/run.cgi", "ScriptAlias"), id="script"
        ),
        pytest.param(
            "/img/cats/12.png", ("/srv/images/cats/12.png", "AliasMatch"), id="groups"
        ),
        pytest.param("/img/cats/x.png", ("/var/www/img/cats/x.png", "DocumentRoot")),
        pytest.param("/swap/a/b", ("/srv/b/a", "AliasMatch"), id="groups-reordered"),
        pytest.param(
            "/opt/x/y", ("/srv/opt/x/y", "AliasMatch"), id="unset-group-empty"
        ),
        pytest.param(
            "/opt/extra/y", ("/srv/opt/extra/y", "AliasMatch"), id="set-group"
        ),
        pytest.param("/whole/q", ("/srv/all/whole/q", "AliasMatch"), id="dollar-zero"),
        pytest.param("/lit/q", ("/srv/lit/$1", "AliasMatch"), id="escaped-dollar"),
        pytest.param("/nine/q", ("/srv/nine/x", "AliasMatch"), id="no-such-group"),
        pytest.param(
            "/scripts/run", ("/srv/cgi/run.cgi", "ScriptAliasMatch"), id="script-match"
        ),
        pytest.param("/other", ("/var/www/other", "DocumentRoot"), id="document-root"),
    ],
)
def test_mod_alias_rules(path: str, expected: tuple[str, str]) -> None:
    assert mapped(MOD_ALIAS, path) == expected


MOD_WSGI = """\
DocumentRoot /var/www
WSGIScriptAlias /app /srv/app/app.wsgi process-group=app application-group=%{GLOBAL}
WSGIScriptAlias /api/ /srv/api/
WSGIScriptAliasMatch ^/v([0-9])/ /srv/app/v$1.wsgi
WSGIScriptAliasMatch ^/w([0-9]) /srv/app/w$1.wsgi
Alias /app/static /srv/static
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/app", ("/srv/app/app.wsgi", "WSGIScriptAlias"), id="script"),
        pytest.param("/app/x/y", ("/srv/app/app.wsgi", "WSGIScriptAlias"), id="info"),
        pytest.param(
            "/app/static/s.css", ("/srv/static/s.css", "Alias"), id="alias-1st"
        ),
        pytest.param("/api/one.wsgi", ("/srv/api/one.wsgi", "WSGIScriptAlias")),
        pytest.param(
            "/v1/x", ("/srv/app/v1.wsgix", "WSGIScriptAliasMatch"), id="rest-glued"
        ),
        pytest.param(
            "/w1/x", ("/srv/app/w1.wsgi", "WSGIScriptAliasMatch"), id="rest-is-info"
        ),
        pytest.param("/appx", ("/var/www/appx", "DocumentRoot"), id="not-mid-segment"),
    ],
)
def test_mod_wsgi_rules(path: str, expected: tuple[str, str]) -> None:
    assert mapped(MOD_WSGI, path) == expected


def test_wsgi_script_alias_of_root_takes_everything_alias_does_not() -> None:
    text = "Alias /static /srv/static\nWSGIScriptAlias / /srv/app.wsgi\n"
    assert mapped(text, "/static/a.css") == ("/srv/static/a.css", "Alias")
    assert mapped(text, "/x/y") == ("/srv/app.wsgi", "WSGIScriptAlias")
    assert mapped("WSGIScriptAlias / /srv/scripts/\n", "/x") == (
        "/srv/scripts/x",
        "WSGIScriptAlias",
    )


USERDIR = """\
DocumentRoot /var/www
UserDir public_html
UserDir disabled root
"""


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        pytest.param(USERDIR, "/~alice/x", "/home/alice/public_html/x", id="common"),
        pytest.param(USERDIR, "/~alice", "/home/alice/public_html", id="bare"),
        pytest.param(USERDIR, "/~alice/", "/home/alice/public_html/", id="slash"),
        pytest.param(USERDIR, "/~root/x", "/var/www/~root/x", id="disabled-user"),
        pytest.param(USERDIR, "/~/x", "/var/www/~/x", id="no-user"),
        pytest.param(USERDIR, "/~a./x", "/var/www/~a./x", id="dotted-user"),
        pytest.param("UserDir /srv/u\n", "/~bob/x", "/srv/u/bob/x", id="absolute"),
        pytest.param("UserDir /h/*/www\n", "/~bob/x", "/h/bob/www/x", id="star"),
        pytest.param("UserDir /h/*\n", "/~bob/x", "/h/bob/x", id="star-last"),
        pytest.param(
            "UserDir public_html /srv/u\n",
            "/~bob/x",
            "/home/bob/public_html/x",
            id="first-of-several",
        ),
        pytest.param(
            "UserDir public_html\nUserDir disabled\nUserDir enabled alice\n",
            "/~alice/x",
            "/home/alice/public_html/x",
            id="enabled-user",
        ),
        pytest.param(
            "UserDir public_html\nUserDir disabled\nUserDir enabled alice\n",
            "/~bob/x",
            None,
            id="globally-disabled",
        ),
        pytest.param("UserDir http://h/users\n", "/~bob/x", None, id="redirect"),
        pytest.param("UserDir http://h/*/u\n", "/~bob/x", None, id="redirect-star"),
        pytest.param("UserDir http://h/*\n", "/~bob/x", None, id="redirect-star-last"),
        pytest.param("UserDir disabled\n", "/~bob/x", None, id="no-directory"),
        pytest.param(
            "Alias /~bob /srv/b\nUserDir u\n", "/~bob/x", "/srv/b/x", id="alias"
        ),
    ],
)
def test_userdir_rules(text: str, path: str, expected: str | None) -> None:
    assert mapped(text, path)[0] == expected


VHOSTS = """\
DocumentRoot /var/www
Alias /both /srv/main-both
Alias /shared /srv/shared
WSGIScriptAlias /app /srv/main.wsgi
UserDir /home/*/www
UserDir disabled bob
<VirtualHost *:80>
  ServerName one.test
  DocumentRoot /srv/one
  Alias /both /srv/one-both
  WSGIScriptAlias /app /srv/one.wsgi
</VirtualHost>
<VirtualHost *:80>
  ServerName two.test
  UserDir /srv/users
  UserDir disabled carol
</VirtualHost>
"""


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        pytest.param("one.test", "/both/b", "/srv/one-both/b", id="vhost-first"),
        pytest.param("one.test", "/shared/s", "/srv/shared/s", id="main-inherited"),
        pytest.param("one.test", "/app/x", "/srv/one.wsgi", id="wsgi-vhost-first"),
        pytest.param("two.test", "/both/b", "/srv/main-both/b", id="other-vhost"),
        pytest.param("two.test", "/app/x", "/srv/main.wsgi", id="wsgi-inherited"),
        pytest.param("one.test", "/x", "/srv/one/x", id="vhost-document-root"),
        pytest.param("one.test", "/~bob/b", "/home/bob/www/b", id="user-lists-own"),
        pytest.param("two.test", "/~bob/b", "/srv/users/bob/b", id="own-userdir"),
        pytest.param("two.test", "/~carol/c", "/var/www/~carol/c", id="own-disabled"),
        pytest.param("three.test:81", "/~bob/b", "/var/www/~bob/b", id="main-server"),
    ],
)
def test_virtual_hosts_inherit_as_httpd_merges(
    host: str, path: str, expected: str
) -> None:
    config = parse_config(VHOSTS)
    assert config.explain(environ(path, host=host)).fs_path == expected


def test_userdir_global_disable_is_inherited() -> None:
    text = "UserDir public_html\nUserDir disabled\n<VirtualHost *:80>\n</VirtualHost>\n"
    assert mapped(text, "/~bob/x", host="v.test")[0] is None
    text = text.replace("</VirtualHost>", "UserDir enabled\n</VirtualHost>")
    assert mapped(text, "/~bob/x", host="v.test")[0] == "/home/bob/public_html/x"


def test_alias_reaches_its_directory_section() -> None:
    # the snippet: explain said "(none)" before
    text = (
        "DocumentRoot /var/www\nAlias /downloads /srv/files\n"
        "<Directory /srv/files>\n  AllowReproxy On\n</Directory>\n"
        "<Directory /var/www>\n  AllowReproxy Off\n  PreserveHeaders X-A\n</Directory>\n"
    )
    config = parse_config(text)
    explanation = config.explain(environ("/downloads/x.iso"))
    assert [s.describe() for s in explanation.sections] == ['<Directory "/srv/files">']
    assert config.resolve(environ("/downloads/x.iso")).allow_reproxy is True
    assert explanation.mapped is not None
    assert explanation.mapped.describe() == (
        'Alias "/downloads" "/srv/files" at <string>:2'
    )
    assert config.resolve(environ("/other")).preserve_headers == ("X-A",)


def test_script_filename_wins_over_aliases() -> None:
    config = parse_config("Alias /x /srv/x\n")
    env = environ("/x/y", SCRIPT_FILENAME="/srv/app.wsgi")
    explanation = config.explain(env)
    assert (explanation.fs_path, explanation.mapped) == (
        "/srv/app.wsgi",
        explanation.mapped,
    )
    assert explanation.mapped is not None and explanation.mapped.how == (
        "SCRIPT_FILENAME"
    )
    assert explanation.mapped.describe() == "SCRIPT_FILENAME"


def test_relative_targets_start_at_server_root() -> None:
    text = "ServerRoot /etc/apache2\nAlias /x files\nWSGIScriptAlias /w app.wsgi\n"
    assert mapped(text, "/x/y") == ("/etc/apache2/files/y", "Alias")
    assert mapped(text, "/w") == ("/etc/apache2/app.wsgi", "WSGIScriptAlias")


def test_a_relative_url_path_falls_to_the_document_root() -> None:
    # httpd declines any r->uri not starting with "/"; WSGI may send one
    assert mapped("DocumentRoot /r\nAlias / /srv/\n", "x") == ("/r/x", "DocumentRoot")
    assert mapped("Alias / /srv/\n", "x") == (None, "none")


@pytest.mark.parametrize(
    ("line", "warning"),
    [
        pytest.param(
            "<Directory /x>\nAlias /a /b\n</Directory>",
            "<string>:2: Alias is not allowed here (httpd: server config only)",
            id="in-directory",
        ),
        pytest.param(
            "<Location /a>\nAlias /b\n</Location>",
            "<string>:2: Alias with one argument (an expression) is not applied",
            id="expression",
        ),
        pytest.param(
            "AliasMatch ^/(x /b",
            "<string>:1: AliasMatch regex '^/(x' does not compile: "
            "missing ), unterminated subpattern at position 2: ignored",
            id="bad-regex",
        ),
        pytest.param(
            "Alias /a /b /c",
            "<string>:1: Alias takes a URL and a path: ignored",
            id="three-words",
        ),
        pytest.param(
            "UserDir", "<string>:1: UserDir requires an argument: ignored", id="userdir"
        ),
    ],
)
def test_mapping_lines_httpd_refuses_are_ignored_with_a_warning(
    line: str, warning: str
) -> None:
    parsed = parse_text(line + "\n")
    assert parsed.warnings == (warning,)
    assert parsed.aliases == ()


def test_mapping_lines_are_records_with_file_and_line() -> None:
    parsed = parse_text(
        "Alias /a /b\n<VirtualHost *>\nScriptAlias /c/ /d/\n</VirtualHost>\n"
    )
    (alias,) = parsed.aliases
    assert (alias.directive, alias.url, alias.target, alias.where) == (
        "Alias",
        "/a",
        "/b",
        "<string>:1",
    )
    (vhost_alias,) = parsed.vhosts[0].aliases
    assert (vhost_alias.directive, vhost_alias.module, vhost_alias.lineno) == (
        "ScriptAlias",
        "alias",
        3,
    )
    assert parsed.ignored == ()


fake_paths = st.text(alphabet="/ab", min_size=1, max_size=8)


@given(uri=fake_paths, fake=fake_paths)
def test_prefix_rule_equals_httpds_alias_matches(uri: str, fake: str) -> None:
    # the resolver matches a slash-merged URL against a slash-merged prefix;
    # httpd's alias_matches compares the raw ones: the same answer
    uri = "/" + uri
    rule = _Rule(parse_text(f"Alias {fake} /t\n").aliases[0])
    length = alias_matches(uri, fake)
    merged = merge_slashes(uri)
    expected = None if not length else "/t" + merge_slashes(uri[length:])
    found = rule.apply(merged)
    assert (found and merge_slashes(found)) == expected


# -- check ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [
        pytest.param("alowreproxy", "allowreproxy", True, id="dropped"),
        pytest.param("allowwreproxy", "allowreproxy", True, id="added"),
        pytest.param("allowreprixy", "allowreproxy", True, id="changed"),
        pytest.param("allowrepoxry", "allowreproxy", False, id="two-changes"),
        pytest.param("allworeproxy", "allowreproxy", True, id="swapped"),
        pytest.param("allowreproxy", "allowreproxy", False, id="same"),
        pytest.param("alowrepoxy", "allowreproxy", False, id="two-dropped"),
    ],
)
def test_one_edit_apart(a: str, b: str, close: bool) -> None:
    assert one_edit_apart(a, b) is close
    assert one_edit_apart(b, a) is close


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_names_a_misspelt_directive_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text(
        "ReproxyAllowTargets http://10.0.0.1/\n"
        "<Location /d>\n  AlowReproxy On\n  PreserveHeader X-A\n  Alias2 x\n</Location>\n"
    )
    code, out, err = run(capsys, "check", str(conf))
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [
        f"warning: {conf}:3: AlowReproxy is not a directive wsgi_reproxy knows, so "
        "it is ignored: did you mean AllowReproxy?",
        f"warning: {conf}:4: PreserveHeader is not a directive wsgi_reproxy knows, "
        "so it is ignored: did you mean PreserveHeaders?",
    ]
    assert "Alias2" not in out and "2 warning(s)" in out


def test_check_warns_about_a_directory_no_alias_reaches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text(
        "ReproxyAllowTargets http://10.0.0.1/\n"
        "DocumentRoot /var/www\n"
        "Alias /downloads /srv/files\n"
        "<Directory /srv/file>\n  AllowReproxy On\n</Directory>\n"
        "<Directory /srv/files>\n  AllowReproxy On\n</Directory>\n"
        "<Directory /srv>\n  AllowReproxy On\n</Directory>\n"
        "<Directory /var/*/sub>\n  AllowReproxy On\n</Directory>\n"
        "<Directory /elsewhere>\n  Require all granted\n</Directory>\n"
        "<VirtualHost *:80>\n  <Directory /srv/other>\n    AllowReproxy On\n"
        "  </Directory>\n</VirtualHost>\n"
    )
    code, out, _ = run(capsys, "check", str(conf))
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("warning")] == [
        f'warning: {conf}:4: <Directory "/srv/file"> is reached by no DocumentRoot, '
        "Alias or UserDir of this config: its directives never apply",
        f'warning: {conf}:20: <Directory "/srv/other"> is reached by no '
        "DocumentRoot, Alias or UserDir of this config: its directives never apply",
    ]


def test_check_does_not_judge_a_config_that_maps_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a snippet for mod_wsgi: SCRIPT_FILENAME decides at run time
    conf = tmp_path / "a.conf"
    conf.write_text(
        "ReproxyAllowTargets http://10.0.0.1/\n"
        "<Directory /srv/app>\n  AllowReproxy On\n</Directory>\n"
    )
    code, out, _ = run(capsys, "check", str(conf))
    assert code == 0 and "warning:" not in out


@pytest.mark.parametrize(
    ("root", "directory", "expected"),
    [
        pytest.param("/srv/files", "/srv", True, id="above"),
        pytest.param("/srv", "/srv/files/x", True, id="below"),
        pytest.param("/srv/files", "/srv/file", False, id="sibling"),
        pytest.param("/home/*/www", "/home/alice/www/sub", True, id="glob-root"),
        pytest.param("/home/alice", "/home/*/www", True, id="glob-directory"),
        pytest.param("/home/*/www", "/home/*/public_html", False, id="globs-differ"),
        pytest.param("/home/*/www", "/home/[ab]*/www", True, id="two-globs"),
    ],
)
def test_reaches(root: str, directory: str, expected: bool) -> None:
    assert reaches(root, directory) is expected


def test_explain_names_the_line_that_mapped_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text(
        "DocumentRoot /var/www\nAlias /downloads /srv/files\n"
        "<Directory /srv/files>\n  AllowReproxy On\n</Directory>\n"
    )
    code, out, _ = run(capsys, "explain", str(conf), "/downloads/x.iso")
    lines = out.splitlines()
    assert code == 0
    assert lines[1:3] == [
        "Filesystem path: /srv/files/x.iso",
        f'Mapped by: Alias at {conf}:2  (Alias "/downloads" "/srv/files")',
    ]
    assert f'1. {conf}:3  <Directory "/srv/files">' in out
    _, out, _ = run(capsys, "explain", str(conf), "/x")
    assert out.splitlines()[1:3] == [
        "Filesystem path: /var/www/x",
        "Mapped by: DocumentRoot",
    ]
    conf.write_text("UserDir public_html\n")
    _, out, _ = run(capsys, "explain", str(conf), "/~bob/")
    assert re.search(r"Mapped by: UserDir at .*a.conf:1  \(UserDir public_html\)", out)
    conf.write_text("<Location />\n</Location>\n")
    _, out, _ = run(capsys, "explain", str(conf), "/x")
    assert "Filesystem path: (none: no DocumentRoot)" in out
    assert "Mapped by" not in out


FUZZED = parse_config(
    MOD_ALIAS + MOD_WSGI.replace("DocumentRoot /var/www\n", "") + USERDIR
)
url_text = st.text(alphabet="/~.a$1\\%x", max_size=12)


@given(path=url_text, host=st.sampled_from(["a.test", ""]))
def test_mapping_never_raises_and_stays_absolute(path: str, host: str) -> None:
    explanation = FUZZED.explain(environ(path, host=host or None))
    assert explanation.fs_path is not None and explanation.fs_path.startswith("/")
    assert "//" not in explanation.fs_path
