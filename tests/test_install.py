"""``pip install 'wsgi_reproxy[serve]'`` into a venv that has nothing else,
then ``wsgi-reproxy serve`` with its defaults (gevent workers) downloads a
file (issue 12: gunicorn's gevent worker needs ``packaging``, which pytest
brings into the test environment and so hides when it is missing)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import urllib3
from _processes import Command

from wsgi_reproxy.run.storage import StorageNode, generated_bytes

ROOT = Path(__file__).resolve().parent.parent
FILE = generated_bytes(3 * 1024 * 1024 + 1, "venv.bin")

APP = """\
def app(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("X-Reproxy-Url", "{url}"),
    ])
    return [b""]
"""

CONF = "<Location />\n  AllowReproxy On\n</Location>\n"


@pytest.mark.slow
def test_serve_extra_alone_runs_serve_with_its_gevent_default(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # Not editable: the installed package alone, as a user gets it.
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{ROOT}[serve]"],
        check=True,
        timeout=600,
        capture_output=True,
    )
    with StorageNode({"f.bin": FILE}) as storage:
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "plain_app.py").write_text(
            APP.format(url=storage.url("f.bin"))
        )
        (tmp_path / "site" / "reproxy.conf").write_text(CONF)
        serve = Command(
            [
                "serve",
                "reproxy.conf",
                "plain_app:app",
                "--bind",
                "127.0.0.1:0",
                "--",
                "--no-control-socket",
            ],
            tmp_path,
            cwd=tmp_path / "site",
        )
        serve.args = [str(venv / "bin" / "wsgi-reproxy"), *serve.args[3:]]
        # Nothing of this checkout or the test environment leaks in.
        serve.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        with serve:
            http = urllib3.PoolManager(retries=False, timeout=30)
            got = http.request("GET", f"http://127.0.0.1:{serve.port}/x")
            http.clear()
            serve.stop()
    assert got.status == 200
    assert hashlib.sha256(got.data).digest() == hashlib.sha256(FILE).digest()
    log = serve.stderr()
    assert "Using worker: gevent" in log
    assert "Traceback" not in log
    # The only warning allowed: this machine's hard RLIMIT_NOFILE (20,000
    # on the CI box) is just short of one worker's 10,000 connections.
    warnings = [
        line
        for line in log.lower().splitlines()
        if "warning" in line and "open files are limited" not in line
    ]
    assert warnings == []
    # The package served is the venv's copy, not this checkout.
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import wsgi_reproxy; print(wsgi_reproxy.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=serve.env,
        cwd=tmp_path,
    )
    assert site.stdout.startswith(str(venv))
