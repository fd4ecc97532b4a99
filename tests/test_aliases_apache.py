"""URL-to-file mapping against a real Apache 2.4: real Debian snippets and ours.

The method is ``test_resolver.py``'s: every section gets a mod_headers line
appending its own number to ``X-Order`` when Apache merges it, and each
virtual host names itself in ``X-V``; the server adds ``X-File``, the
``REQUEST_FILENAME`` Apache's walk settled on, and ``X-PI``, its
``PATH_INFO``.  Our parser ignores ``Header``, so ``explain()`` must list the
same sections in the same order, choose the same virtual host and (where
Apache's walk found no ``PATH_INFO``, which only the disk can decide) name the
same file, for every URL.

The configs are

* the Apache snippets of real Debian packages (phpmyadmin, nagios4, cgit,
  munin, zoneminder, the apache2-doc examples, …), fetched with ``apt-get
  download`` and unpacked with ``dpkg-deb -x`` into a temporary tree, never
  installed.  Their absolute paths (``/usr``, ``/etc``, ``/var``) are moved
  into that tree; lines Apache cannot load with the modules this test loads
  (``DirectoryIndex`` without mod_dir, ``AuthType Digest``, …) are dropped,
  as are the out-of-scope ``Rewrite*``, ``Redirect*``, ``Proxy*`` and
  ``ErrorDocument`` lines (they answer or re-route before or after the walk,
  which is not the mapping compared here).  A package apt cannot fetch is
  left out, and the test says which;
* our own Alias-heavy configs (:data:`OWN`): order, the trailing-slash rule,
  ``AliasMatch`` back-references, ``ScriptAlias``, ``WSGIScriptAlias``,
  ``UserDir`` and virtual hosts inheriting the main server's aliases.

URLs are generated from each config's alias lines (the prefix, with and
without a trailing slash, a name running on past it, real files below the
target, doubled slashes) plus a few written by hand.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wsgi_reproxy import Config, load_config

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
LOADED = (
    "mpm_prefork",
    "authz_core",
    "authz_host",
    "access_compat",
    "headers",
    "alias",
    "userdir",
    "mime",
    "env",
    "setenvif",
    "wsgi",
    "proxy",
    "proxy_fcgi",
)
#: Debian's apache2 has these compiled in (``apache2 -l``).
BUILTIN = ("core", "so", "watchdog", "http", "log_config", "logio", "version", "unixd")

#: Package -> its Apache snippets, as paths inside the package.
PACKAGES: dict[str, tuple[str, ...]] = {
    "phpmyadmin": ("etc/phpmyadmin/apache.conf",),
    "nagios4-cgi": ("etc/apache2/conf-available/nagios4-cgi.conf",),
    "cgit": ("etc/apache2/conf-available/cgit.conf",),
    "munin": ("etc/munin/apache24.conf",),
    "zoneminder": (
        "etc/apache2/conf-available/zoneminder.conf",
        "usr/share/doc/zoneminder/examples/apache.conf",
    ),
    "javascript-common": ("etc/apache2/conf-available/javascript-common.conf",),
    "mailman3-web": ("etc/mailman3/apache.conf",),
    "gitweb": ("etc/apache2/conf-available/gitweb.conf",),
    "dwww": ("etc/apache2/conf-available/dwww.conf",),
    "smokeping": ("etc/apache2/conf-available/smokeping.conf",),
    "sqwebmail": ("etc/apache2/conf-available/sqwebmail.apache24.conf",),
    "tt-rss": ("etc/tt-rss/apache.conf",),
    "ganglia-webfrontend": ("etc/ganglia-webfrontend/apache.conf",),
    "awstats": ("usr/share/doc/awstats/examples/apache.conf",),
    "roundcube-core": ("etc/roundcube/apache.conf",),
    "sympa": ("etc/apache2/conf-available/sympa.conf",),
    "w3c-markup-validator": ("etc/apache2/conf-available/w3c-markup-validator.conf",),
    "apache2-doc": ("etc/apache2/conf-available/apache2-doc.conf",),
    "apache2": (
        "usr/share/doc/apache2/examples/apache2/extra/httpd-autoindex.conf",
        "usr/share/doc/apache2/examples/apache2/extra/httpd-manual.conf",
        "usr/share/doc/apache2/examples/apache2/extra/httpd-multilang-errordoc.conf",
        "usr/share/doc/apache2/examples/apache2/extra/httpd-dav.conf",
    ),
}
#: URLs written by hand, for the regex aliases generation cannot guess.
EXTRA_URLS: dict[str, tuple[str, ...]] = {
    "w3c-markup-validator-w3c-markup-validator.conf": (
        "/w3c-validator/feedback",
        "/w3c-validator/feedback.html",
        "//w3c-validator//feedback.html",
        "/w3c-validator/feedbackx",
        "/w3c-validator/check",
    ),
    "apache2-httpd-manual.conf": (
        "/manual",
        "/manual/",
        "/manual/index.html",
        "/manual/en/index.html",
        "/manual/de/index.html",
        "/manual/mod/index.html",
        "/manual/xx/index.html",
        "/manualx",
    ),
}
#: Files the hand-written URLs reach (the packages do not ship them).
EXTRA_FILES: dict[str, tuple[str, ...]] = {
    "apache2-httpd-manual.conf": (
        "usr/share/apache2/default-site/htdocs/manual/index.html",
        "usr/share/apache2/default-site/htdocs/manual/mod/index.html",
        "usr/share/apache2/default-site/htdocs/manual/xx/index.html",
    ),
}
#: Out of scope (README): lines that answer or re-route a request instead of
#: mapping it, dropped from the package snippets.
OUT_OF_SCOPE = re.compile(
    r"^\s*(Rewrite\w*|Redirect\w*|Proxy\w*|ErrorDocument|DirectoryIndex|"
    r"FallbackResource)\b",
    re.IGNORECASE,
)
SECTION = re.compile(
    r"^(\s*)<(Directory|DirectoryMatch|Files|FilesMatch|Location|LocationMatch)\b",
    re.IGNORECASE,
)
ALIAS = re.compile(
    r"^\s*(Alias|ScriptAlias|WSGIScriptAlias)\s+(\S+)\s+(\S+)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass
class Site:
    """One config under test and the URLs asked of it."""

    name: str
    snippet: str  # the config text, paths already inside the tree
    urls: list[tuple[str, str]]  # (path, Host)
    files: list[str] = field(default_factory=list)  # to create below the tree
    dropped: list[str] = field(default_factory=list)


# -- our own configs ------------------------------------------------------------
# {fs} is the temporary tree.  Each has the files its URLs reach.

OWN: dict[str, tuple[str, list[str], list[str]]] = {
    "order-and-slashes": (
        """\
Alias /dl/special {fs}/srv/special
Alias /dl {fs}/srv/files
Alias /dl/late {fs}/srv/never
Alias /slash/ {fs}/srv/slash/
Alias /noslash {fs}/srv/slash/
Alias //multi//part {fs}/srv/multi
Alias /file.txt {fs}/srv/files/a.txt
ScriptAlias /cgi-bin/ {fs}/srv/cgi/
ScriptAlias /tools {fs}/srv/cgi
<Directory {fs}/srv/files>
</Directory>
<Directory {fs}/srv/files/sub>
</Directory>
<Directory {fs}/srv/special>
</Directory>
<Directory {fs}/srv/never>
</Directory>
<Directory {fs}/srv/slash>
</Directory>
<Directory {fs}/srv>
</Directory>
<Directory {fs}/srv/multi>
</Directory>
<Directory {fs}/srv/cgi>
  <Files run.cgi>
  </Files>
</Directory>
<Files a.txt>
</Files>
<Location /dl>
</Location>
""",
        [
            "srv/files/a.txt",
            "srv/files/sub/b.txt",
            "srv/special/s.txt",
            "srv/never/n.txt",
            "srv/slash/x.txt",
            "srv/multi/m.txt",
            "srv/cgi/run.cgi",
            "www/dlx/z.txt",
            "www/slash",
        ],
        [
            "/dl",
            "/dl/",
            "/dl/a.txt",
            "/dl/sub/b.txt",
            "/dl//sub//b.txt",
            "/dl/special/s.txt",
            "/dl/late/n.txt",
            "/dlx/z.txt",
            "/slash",
            "/slash/",
            "/slash/x.txt",
            "/noslash",
            "/noslash/x.txt",
            "/multi/part/m.txt",
            "//multi/part/m.txt",
            "/multi//part//m.txt",
            "/file.txt",
            "/cgi-bin/run.cgi",
            "/tools/run.cgi",
            "/a/../dl/a.txt",
        ],
    ),
    "aliasmatch": (
        r"""
AliasMatch ^/img/([a-z]+)/(\d+)\.png$ {fs}/srv/images/$1/$2.png
AliasMatch ^/swap/([^/]+)/([^/]+)$ {fs}/srv/$2/$1
AliasMatch "^/opt(/extra)?/(.*)" "{fs}/srv/files/$2"
ScriptAliasMatch ^/scripts/(\w+)$ {fs}/srv/cgi/$1.cgi
AliasMatch ^/lit/(.*) {fs}/srv/files/\$1
Alias /img {fs}/srv/never
<Directory {fs}/srv/images>
</Directory>
<Directory {fs}/srv/images/cats>
</Directory>
<DirectoryMatch "^{fs}/srv/[a-z]+/">
</DirectoryMatch>
<Directory {fs}/srv/files>
</Directory>
<Directory {fs}/srv/never>
</Directory>
<Directory {fs}/srv/cgi>
</Directory>
<FilesMatch "\.png$">
</FilesMatch>
""",
        [
            "srv/images/cats/12.png",
            "srv/images/dogs/7.png",
            "srv/files/a.txt",
            "srv/files/x/y.txt",
            "srv/cgi/run.cgi",
            "srv/never/cats/12.png",
            "srv/never/cats/x.png",
            "srv/files/$1",
        ],
        [
            "/img/cats/12.png",
            "/img/dogs/7.png",
            "/img/cats/x.png",
            "/swap/a.txt/files",
            "/opt/a.txt",
            "/opt/extra/x/y.txt",
            "/scripts/run",
            "/scripts/run/x",
            "/lit/anything",
        ],
    ),
    "wsgi-and-userdir": (
        """\
Alias /app/static {fs}/srv/static
WSGIScriptAlias /app {fs}/srv/app/app.wsgi
WSGIScriptAlias /api/ {fs}/srv/api/
WSGIScriptAliasMatch ^/v([0-9])/ {fs}/srv/app/v$1.wsgi
Alias /app/late {fs}/srv/static
UserDir {fs}/home/*/public_html
UserDir disabled root
<Directory {fs}/srv/app>
  <Files app.wsgi>
  </Files>
</Directory>
<Directory {fs}/srv/api>
</Directory>
<Directory {fs}/srv/static>
</Directory>
<Directory {fs}/home/*/public_html>
</Directory>
<Directory {fs}/home/alice/public_html/sub>
</Directory>
<Files *.wsgi>
</Files>
""",
        [
            "srv/app/app.wsgi",
            "srv/app/v1.wsgi",
            "srv/api/one.wsgi",
            "srv/static/s.css",
            "home/alice/public_html/index.html",
            "home/alice/public_html/sub/p.txt",
            "home/root/public_html/r.txt",
            "www/~root/public_html/r.txt",
        ],
        [
            "/app",
            "/app/",
            "/app/x/y",
            "/app/static/s.css",
            "/app/late/s.css",
            "/api/one.wsgi",
            "/v1/anything",
            "/v1/",
            "/v1",
            "/v12/x",
            "/~alice/",
            "/~alice/index.html",
            "/~alice/sub/p.txt",
            "/~root/public_html/r.txt",
            "/~/x",
        ],
    ),
    "vhosts": (
        """\
Alias /shared {fs}/srv/shared
Alias /both {fs}/srv/main-both
UserDir {fs}/home/*/www
<VirtualHost *:{port}>
  ServerName one.test
  DocumentRoot {fs}/srv/one
  Alias /both {fs}/srv/one-both
  Alias /own {fs}/srv/one-own
  <Directory {fs}/srv/one-both>
  </Directory>
</VirtualHost>
<VirtualHost *:{port}>
  ServerName two.test
  UserDir {fs}/users
  UserDir disabled bob
</VirtualHost>
<Directory {fs}/srv>
</Directory>
<Directory {fs}/srv/shared>
</Directory>
<Directory {fs}/srv/main-both>
</Directory>
<Directory {fs}/home/*/www>
</Directory>
<Directory {fs}/users>
</Directory>
""",
        [
            "srv/shared/s.txt",
            "srv/main-both/b.txt",
            "srv/one-both/b.txt",
            "srv/one-own/o.txt",
            "srv/one/own2.txt",
            "home/bob/www/b.txt",
            "users/bob/b.txt",
            "users/carol/c.txt",
            "home/carol/www/c.txt",
        ],
        [
            "/shared/s.txt",
            "/both/b.txt",
            "/own/o.txt",
            "/own2.txt",
            "/~bob/b.txt",
            "/~carol/c.txt",
        ],
    ),
}
OWN_HOSTS = {"vhosts": ("one.test", "two.test", "other.test")}


# -- the Apache side ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:  # Apache cannot report a port 0 bind
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _main_conf(root: Path, fs: Path, port: int, snippet: Path) -> str:
    loads = "\n".join(
        f"LoadModule {name}_module {MODULES}/mod_{name}.so" for name in LOADED
    )
    return f"""\
ServerRoot {root}
{loads}
PidFile {root}/httpd.pid
ErrorLog {root}/error.log
User www-data
Group www-data
Listen 127.0.0.1:{port}
ServerName localhost
WSGIRestrictEmbedded On
# gitweb.conf defines it when mod_cgi is loaded; this test never runs CGIs
Define ENABLE_GITWEB
TypesConfig /etc/mime.types
# .htaccess files of the packages are not what is compared
AccessFileName .htaccess-not-read-by-this-test
DocumentRoot {fs}/www
Header always set X-File "expr=%{{REQUEST_FILENAME}}"
Header always set X-PI "expr=%{{PATH_INFO}}"
<Directory />
  Require all granted
</Directory>
Include {snippet}
"""


def _logical_end(lines: list[str], i: int) -> int:
    """The index after the logical line starting at *i* (``\\`` continues)."""
    while i < len(lines) and lines[i].endswith("\\"):
        i += 1
    return i + 1


def _drop(lines: list[str], i: int) -> list[str]:
    """*lines* without the logical line *i*, or its whole section."""
    match = re.match(r"\s*<(\w+)", lines[i])
    if not match:
        return lines[:i] + lines[_logical_end(lines, i) :]
    tag, depth = match.group(1).lower(), 0
    for j in range(i, len(lines)):
        opener = re.match(r"\s*<(/?)(\w+)", lines[j])
        if opener and opener.group(2).lower() == tag:
            depth += -1 if opener.group(1) else 1
            if depth == 0:
                return lines[:i] + lines[j + 1 :]
    return lines[:i]


def _loadable(conf: Path, snippet: Path, site: Site) -> None:
    """Drop the snippet lines Apache refuses with our modules, one by one."""
    for _ in range(80):
        done = subprocess.run(
            [str(APACHE), "-t", "-f", str(conf)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode == 0:
            return
        found = re.search(r"on line (\d+) of (\S+?):", done.stderr)
        if found is None or Path(found.group(2)) != snippet:
            pytest.fail(f"{site.name}: Apache refuses the config:\n{done.stderr}")
        lines = snippet.read_text().split("\n")
        i = int(found.group(1)) - 1
        site.dropped.append(lines[i].strip())
        snippet.write_text("\n".join(_drop(lines, i)))
    pytest.fail(f"{site.name}: too many lines Apache refuses")


def _mark(snippet: Path, counter: list[int]) -> dict[int, tuple[str, int]]:
    """Put an ``X-Order`` line in every section; marker -> (file, line)."""
    out: list[str] = []
    marks: dict[int, tuple[str, int]] = {}
    for line in snippet.read_text().split("\n"):
        out.append(line)
        if SECTION.match(line) and not line.rstrip().endswith("\\"):
            counter[0] += 1
            marks[counter[0]] = (str(snippet), len(out))
            out.append(f"  Header always append X-Order {counter[0]}")
        elif re.match(r"\s*<VirtualHost\b", line, re.IGNORECASE):
            out.append(f"  Header always set X-V {len(out)}")
    snippet.write_text("\n".join(out) + "\n")
    return marks


@dataclass
class Answer:
    order: list[int]
    vhost: str | None
    filename: str
    path_info: str


def _ask(port: int, path: str, host: str) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        response.read()
        values = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    order = [int(n) for n in values.get("x-order", "").split(",") if n.strip()]
    return Answer(order, values.get("x-v"), values["x-file"], values.get("x-pi", ""))


@dataclass
class Verdict:
    site: str
    urls: int
    disagreements: list[str]
    dropped: list[str]
    how: dict[str, int]  # URLs per mapping directive (ours)


def _compare(root: Path, fs: Path, site: Site) -> Verdict:
    """Start Apache on *site*, ask every URL, compare with ``explain()``."""
    port = _free_port()
    work = root / site.name
    work.mkdir()
    snippet = work / "snippet.conf"
    snippet.write_text(site.snippet.replace("{port}", str(port)))
    conf = work / "httpd.conf"
    conf.write_text(_main_conf(work, fs, port, snippet))
    for name in site.files:
        path = fs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(name)
    _loadable(conf, snippet, site)
    counter = [0]
    marks = _mark(snippet, counter)
    modules = [*LOADED, *BUILTIN]
    config = load_config(conf, modules=modules)
    proc = subprocess.Popen(
        [str(APACHE), "-X", "-f", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    disagreements = []
    how: dict[str, int] = {}
    try:
        _wait_listening(proc, port, work)
        for path, host in site.urls:
            mapped = config.explain(_environ(path, f"{host}:{port}")).mapped
            key = "none" if mapped is None else mapped.how
            how[key] = how.get(key, 0) + 1
            answer = _ask(port, path, f"{host}:{port}")
            theirs = (answer.order, answer.vhost, answer.filename)
            ours = _ours(config, path, f"{host}:{port}", marks, answer)
            if ours != theirs:
                disagreements.append(
                    f"{site.name} {host}{path}: Apache {theirs}, ours {ours}"
                )
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return Verdict(site.name, len(site.urls), disagreements, site.dropped, how)


def _ours(
    config: Config,
    path: str,
    host: str,
    marks: dict[int, tuple[str, int]],
    answer: Answer,
) -> tuple[list[int], str | None, str]:
    explanation = config.explain(_environ(path, host))
    by_line = {where: n for n, where in marks.items()}
    order = [
        by_line[(s.filename, s.lineno)]
        for s in explanation.sections
        if (s.filename, s.lineno) in by_line
    ]
    vhost = None if explanation.vhost is None else str(explanation.vhost.lineno)
    filename = explanation.fs_path or ""
    if answer.path_info and filename == answer.filename + answer.path_info:
        # Apache's walk split PATH_INFO off at a file it found on disk; we
        # never look: the same mapping, told apart only by the disk
        filename = answer.filename
    return order, vhost, filename


def _environ(path: str, host: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
    }


def _wait_listening(proc: subprocess.Popen[bytes], port: int, work: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (work / "error.log").read_text(errors="replace")
                pytest.fail(f"apache2 did not start:\n{log}")
            time.sleep(0.05)


# -- the package snippets ---------------------------------------------------------

_PATHS = re.compile(r"(?<![\w/.~-])/(usr|etc|var|uploads)(?=/|\"|\s|$|\))")


def _into_tree(text: str, fs: Path) -> str:
    return _PATHS.sub(lambda m: f"{fs}/{m.group(1)}", text)


def _real_files(target: Path, limit: int) -> list[str]:
    """Up to *limit* regular files below *target* (no symlinks on the way)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames[:] = sorted(
            d for d in dirnames if not os.path.islink(f"{dirpath}/{d}")
        )
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                found.append(os.path.relpath(full, target))
                break
        if len(found) >= limit:
            break
    return found


def _package_site(name: str, text: str, fs: Path) -> Site:
    lines = []
    dropped = []
    for line in _into_tree(text, fs).split("\n"):
        if OUT_OF_SCOPE.match(line):
            dropped.append(line.strip())
            line = "# (out of scope) " + line
        lines.append(line)
    # a package's <VirtualHost *:80> listens where this test's Apache does
    snippet = re.sub(r"<VirtualHost \*:80>", "<VirtualHost *:{port}>", "\n".join(lines))
    urls: list[str] = []
    for match in ALIAS.finditer(snippet.replace("\\\n", " ")):
        _, url, target = match.groups()
        target = target.strip("\"'")
        url = url.strip("\"'")
        bare = url.rstrip("/") or "/"
        urls += [bare, bare + "/", bare + "x", "/" + bare.lstrip("/") + "//"]
        real = Path(target)
        if not real.exists():
            if "." in real.name:  # a file: favicon.ico, cgit.cgi
                real.parent.mkdir(parents=True, exist_ok=True)
                real.write_text(str(real))
            else:
                real.mkdir(parents=True, exist_ok=True)
        if real.is_dir():
            if not _real_files(real, 1):
                (real / "made-by-test.txt").write_text("x")
            for rel in _real_files(real, 3):
                urls += [f"{bare}/{rel}", f"/{bare.lstrip('/')}//{rel}"]
    urls += EXTRA_URLS.get(name, ())
    urls += ["/", "/index.html"]
    unique = list(dict.fromkeys(urls))
    files = list(EXTRA_FILES.get(name, ()))
    return Site(name, snippet, [(u, "localhost") for u in unique], files, dropped)


@dataclass
class Tree:
    root: Path
    fs: Path
    sites: list[Site]
    missing: list[str]


@pytest.fixture(scope="module")
def tree() -> Iterator[Tree]:
    if not (APACHE.exists() and (MODULES / "mod_headers.so").exists()):
        pytest.skip("Debian apache2 (with mod_headers) not installed")
    if not (MODULES / "mod_wsgi.so").exists():
        pytest.skip("libapache2-mod-wsgi-py3 not installed")
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get and dpkg-deb are needed to fetch the Debian snippets")
    root = Path(tempfile.mkdtemp(prefix="aliases_apache_", dir="/tmp"))
    root.chmod(0o755)  # Apache's child runs as www-data
    try:
        fs = root / "fs"
        (fs / "www").mkdir(parents=True)
        debs = root / "debs"
        debs.mkdir()
        missing = _download(list(PACKAGES), debs)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(
                ["dpkg-deb", "-x", str(deb), str(fs)], check=True, timeout=120
            )
        sites = []
        for package, paths in PACKAGES.items():
            if package in missing:
                continue
            for rel in paths:
                source = fs / rel
                if source.exists():
                    text = source.read_text(errors="replace")
                    name = f"{package}-{source.name}"
                    sites.append(_package_site(name, text, fs))
                else:
                    missing.append(f"{package}: no {rel}")
        for name, (text, files, urls) in OWN.items():
            hosts = OWN_HOSTS.get(name, ("localhost",))
            sites.append(
                Site(
                    name,
                    text.replace("{fs}", str(fs)),
                    [(u, h) for u in urls for h in hosts],
                    files,
                )
            )
        yield Tree(root, fs, sites, missing)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _download(packages: list[str], into: Path) -> list[str]:
    """``apt-get download`` each package; the ones apt could not fetch."""
    cmd = ["apt-get", "download", "-q", *packages]
    done = subprocess.run(cmd, cwd=into, capture_output=True, text=True, timeout=300)
    if done.returncode == 0:
        return []
    missing = []
    for package in packages:  # one by one, to learn which failed
        if any(into.glob(f"{package}_*.deb")):
            continue
        one = subprocess.run(
            ["apt-get", "download", "-q", package],
            cwd=into,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if one.returncode != 0:
            missing.append(f"{package}: {one.stderr.strip().splitlines()[-1:]}")
    return missing


@pytest.mark.slow
def test_url_to_file_mapping_matches_apache(tree: Tree) -> None:
    verdicts = [_compare(tree.root, tree.fs, site) for site in tree.sites]
    urls = sum(v.urls for v in verdicts)
    wrong = [line for v in verdicts for line in v.disagreements]
    how: dict[str, int] = {}
    for v in verdicts:
        for key, count in v.how.items():
            how[key] = how.get(key, 0) + count
    summary = (
        f"{len(verdicts)} configs, {urls} URLs ({how}), {len(wrong)} "
        f"disagreements; packages left out: {tree.missing or 'none'}"
    )
    print(summary)
    for v in verdicts:
        print(f"  {v.site}: {v.urls} URLs {v.how}, dropped {len(v.dropped)} lines")
    assert wrong == [], summary + "\n" + "\n".join(wrong)
    assert len(verdicts) >= len(OWN) + 10, summary
