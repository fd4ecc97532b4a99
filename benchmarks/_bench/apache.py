"""Apache httpd (event MPM) + mod_wsgi daemon mode, for the slow scenario.

The configuration of ``examples/apache/site.conf``: one daemon process
group, ``processes=2 threads=8``, the benchmark's app wrapped in the
middleware (``<Location />`` / ``AllowReproxy On``).  As in
``tests/test_apache.py``, mod_wsgi embeds Debian's ``/usr/bin/python3``, so
the app runs in a venv of that interpreter holding copies of the packages
it needs, and everything lives in a world-readable directory under
``/tmp`` (Apache's children run as ``www-data``).  ``apache2 -DFOREGROUND``
runs as a :class:`~_bench.procs.Proc`: its children and the mod_wsgi
daemon processes are its descendants, so RSS and CPU cover all of them.
"""

from __future__ import annotations

import importlib.util
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from .procs import Proc, Procs, wait_for_port

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
SYSTEM_PYTHON = Path("/usr/bin/python3")
PACKAGES = ("wsgi_reproxy", "werkzeug", "urllib3", "markupsafe")

#: mod_wsgi's daemon process group, as examples/apache/site.conf has it.
PROCESSES = 2
THREADS = 8

HTTPD_CONF = """\
ServerRoot {root}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {root}/httpd.pid
DefaultRuntimeDir {root}/run
ErrorLog {root}/error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule wsgi_module {modules}/mod_wsgi.so
# Debian's event MPM defaults; enough client slots for the N tried.
ServerLimit 16
ThreadsPerChild 25
MaxRequestWorkers 400
ListenBacklog 4096
WSGISocketPrefix {root}/run/wsgi
WSGIRestrictEmbedded On
WSGIDaemonProcess bench python-home={root}/venv processes={processes} \\
    threads={threads} display-name=%{{GROUP}}
WSGIProcessGroup bench
WSGIApplicationGroup %{{GLOBAL}}
# process-group and application-group: each daemon imports the app when it
# starts, so the idle RSS measured before a phase already holds it.
WSGIScriptAlias / {root}/app.wsgi process-group=bench \
    application-group=%{{GLOBAL}}
<Directory {root}>
    Require all granted
</Directory>
"""

APP_WSGI = """\
import sys
sys.path.insert(0, {root!r})
from wsgi_reproxy import ReproxyMiddleware, parse_config
from app import app
application = ReproxyMiddleware(
    app, parse_config("<Location />\\nAllowReproxy On\\n</Location>")
)
"""


#: Directories made by :func:`start`, removed by :func:`cleanup`.
_ROOTS: list[Path] = []


def cleanup() -> None:
    """Remove the scratch directories (after Apache stopped)."""
    while _ROOTS:
        shutil.rmtree(_ROOTS.pop(), ignore_errors=True)


def available() -> str | None:
    """``None`` when Apache and mod_wsgi are here, else what is missing."""
    for path in (APACHE, MODULES / "mod_wsgi.so", SYSTEM_PYTHON):
        if not path.exists():
            return f"{path} missing"
    return None


def _readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        extra = stat.S_IRGRP | stat.S_IROTH
        if path.is_dir():
            extra |= stat.S_IXGRP | stat.S_IXOTH
        path.chmod(path.stat().st_mode | extra)


def start(procs: Procs, port: int, env: dict[str, str], bench_dir: Path) -> Proc:
    """Apache + mod_wsgi serving the benchmark app on *port*."""
    root = Path(tempfile.mkdtemp(prefix="bench-apache-", dir="/tmp"))
    _ROOTS.append(root)
    (root / "run").mkdir()
    subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(root / "venv")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (site,) = (root / "venv").glob("lib/python3*/site-packages")
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        shutil.copytree(
            Path(spec.origin).parent,
            site / name,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(bench_dir / "_bench" / "app.py", root / "app.py")
    (root / "app.wsgi").write_text(APP_WSGI.format(root=str(root)))
    conf = root / "httpd.conf"
    conf.write_text(
        HTTPD_CONF.format(
            root=root,
            port=port,
            modules=MODULES,
            processes=PROCESSES,
            threads=THREADS,
        )
    )
    _readable(root)
    proc = procs.start(
        "apache", [str(APACHE), "-f", str(conf), "-DFOREGROUND"], env=env
    )
    wait_for_port(port, proc, timeout=40)
    return proc
