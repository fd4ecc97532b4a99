"""``wsgi-reproxy demo``: the whole mechanism on loopback, in one command.

It starts, in one process group:

* a :class:`~wsgi_reproxy.run.storage.StorageNode` serving a few generated files
  (a thread of the gunicorn arbiter);
* a small Flask app that checks ``?token=`` and answers with an empty body and
  ``X-Reproxy-Url: DEAD LIVE`` -- a closed loopback port first, the storage
  node second -- plus the ``Content-Type``/``Content-Disposition`` that
  ``sample_conf/minimal.conf``'s ``PreserveHeaders`` keeps;
* gunicorn serving that app wrapped in the middleware, on ``127.0.0.1``.

It prints curl commands to try and logs every reproxy (logging is configured
here, in the command, never by the library).  Ctrl-C or SIGTERM stops
gunicorn and its workers, then the storage node::

    python -m pip install 'wsgi_reproxy[demo]'
    python -m wsgi_reproxy demo --port 8000
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .defaults import prepare_process, serve_defaults
from .gunicorn import gunicorn_available, run_gunicorn
from .sendtimeout import DEFAULT_SEND_TIMEOUT, send_timeout
from .storage import StorageNode, closed_port_url, generated_bytes

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ..resolve.resolver import Config

logger = logging.getLogger(__name__)

#: The token the demo app accepts in ``?token=``.
TOKEN = "letmein"

#: The same text as ``sample_conf/minimal.conf`` (mod_reproxy's README
#: example), used when the package is installed without the repository.
MINIMAL_CONF = """\
# mod_reproxy's own README example: reproxy everything, and let the
# application choose the Content-Type and Content-Disposition the client sees.
<Location />
  AllowReproxy on
  PreserveHeaders Content-Type Content-Disposition
</Location>
"""

_MINIMAL_CONF_PATH = Path(__file__).resolve().parent.parent / "sample_conf/minimal.conf"


def demo_files() -> dict[str, bytes]:
    """The files the demo's storage node serves; deterministic content."""
    return {
        "hello.txt": b"Hello from the storage node, reproxied by wsgi_reproxy.\n" * 4,
        "photo.jpg": generated_bytes(256 * 1024, "photo.jpg"),
        "big.bin": generated_bytes(8 * 1024 * 1024, "big.bin"),
    }


def demo_config() -> tuple[Config, str]:
    """Load ``sample_conf/minimal.conf``, else the embedded copy.

    :returns: the config and where it came from, for the banner.
    """
    from ..resolve.resolver import load_config, parse_config

    if _MINIMAL_CONF_PATH.is_file():
        return load_config(_MINIMAL_CONF_PATH), str(_MINIMAL_CONF_PATH)
    return parse_config(MINIMAL_CONF, filename="minimal.conf"), "built-in minimal.conf"


def make_app(
    nodes: Sequence[str], files: Mapping[str, bytes], token: str = TOKEN
) -> WSGIApplication:
    """The demo's Flask app (not wrapped in the middleware).

    :param nodes: storage node base URLs, in the order the app lists them in
        ``X-Reproxy-Url``.
    :param files: the files the nodes hold; only their names and sizes are
        used, the app never reads the content.
    :param token: the value ``?token=`` must have.
    """
    from flask import Flask, Response, abort, request

    app = Flask("wsgi_reproxy_demo")

    @app.get("/")
    def index() -> Response:
        names = "\n".join(f"  /files/{name}?token=..." for name in files)
        return Response(f"wsgi_reproxy demo; files:\n{names}\n", mimetype="text/plain")

    @app.get("/files/<name>")
    def download(name: str) -> Response:
        # The permission check is the application's whole job; the storage
        # nodes are internal and never seen by the client.
        if request.args.get("token") != token:
            abort(403, "bad or missing token")
        if name not in files:
            abort(404)
        response = Response(b"", mimetype=_mimetype(name))
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
        response.headers["X-Reproxy-Url"] = " ".join(f"{n}/{name}" for n in nodes)
        # perlbal's extension: the middleware fails over when a node's copy
        # has another size (SPEC §4.3).
        response.headers["X-Reproxy-Expected-Size"] = str(len(files[name]))
        return response

    wsgi_app: WSGIApplication = app
    return wsgi_app


def _mimetype(name: str) -> str:
    import mimetypes

    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def banner(
    port: int, node: str, dead: str, files: Mapping[str, bytes], conf: str
) -> str:
    """The text printed once gunicorn listens: what runs, and what to try."""
    base = f"http://127.0.0.1:{port}"

    def url(name: str, token: str = TOKEN) -> str:
        return shlex.quote(f"{base}/files/{name}?token={token}")

    big = hashlib.sha256(files["big.bin"]).hexdigest()
    return f"""
wsgi_reproxy demo
  app (gunicorn):  {base}/   wrapped with {conf}
  storage node:    {node}   ({", ".join(files)})
  dead node:       {dead}   (listed first in X-Reproxy-Url; nothing listens)

Try:
  curl -i {url("hello.txt")}
  curl -s {url("big.bin")} | sha256sum    # {big}
  curl -i {url("hello.txt", "wrong")}    # 403 from the app
  curl -I {url("big.bin")}    # HEAD
  curl -i -H 'Range: bytes=0-15' {url("hello.txt")}    # 206

Ctrl-C stops everything.
"""


def main(port: int = 8000) -> int:
    """Run the demo until SIGINT/SIGTERM; return the exit status."""
    if not gunicorn_available():
        print(
            "demo: gunicorn is not installed; install it with\n"
            "    python -m pip install 'wsgi_reproxy[demo]'",
            file=sys.stderr,
        )
        return 2
    try:
        import flask  # noqa: F401
    except ImportError:
        print(
            "demo: Flask is not installed; install it with\n"
            "    python -m pip install 'wsgi_reproxy[demo]'",
            file=sys.stderr,
        )
        return 2
    # The command configures logging; the library never does (SPEC §5).
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s [%(process)d] %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    # gevent workers, but no re-exec patched first as serve does (its
    # argv): patched threads are greenlets, and the storage node's would be
    # forked into every worker.  The workers patch after the fork, as plain
    # ``gunicorn -k gevent`` does; gevent then warns that urllib3 imported
    # ssl first, which matters for https targets only -- the demo's are
    # http on loopback.
    warnings.filterwarnings(
        "ignore", message="Monkey-patching ssl after ssl has already been imported"
    )
    config, conf_name = demo_config()
    files = demo_files()
    dead = closed_port_url("").rstrip("/")
    node = StorageNode(files).start()
    app = make_app([dead, node.base_url], files)

    def when_ready(server: object) -> None:
        listener = server.LISTENERS[0]  # type: ignore[attr-defined]
        bound = listener.sock.getsockname()[1]
        print(banner(bound, node.base_url, dead, files, conf_name), flush=True)

    try:
        run_gunicorn(
            ["--bind", f"127.0.0.1:{port}", "--workers", "2"],
            lambda: app,
            config,
            proc_name="wsgi-reproxy-demo",
            # serve's defaults: gevent workers, a 60 s send timeout.
            defaults=serve_defaults,
            configure=prepare_process,
            wrap=send_timeout(DEFAULT_SEND_TIMEOUT),
            # A demo stops promptly; workers have nothing long to finish.
            # No gunicorn control socket: a demo leaves no file in $HOME.
            settings={
                "when_ready": when_ready,
                "graceful_timeout": 1,
                "control_socket_disable": True,
            },
        )
    finally:
        node.stop()
    return 0
