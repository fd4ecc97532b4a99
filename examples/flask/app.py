"""A Flask app whose downloads are served by wsgi_reproxy.

The app does what only it can do -- look the file up and check that the
caller may read it -- then answers with an empty body and ``X-Reproxy-Url``
naming the copies on the storage nodes.  The middleware fetches the first
copy that answers and streams it to the client in the same request.

Run it under gunicorn through the ``serve`` command (which wraps ``app``)::

    STORAGE_NODES="http://10.0.0.5:7500 http://10.0.0.6:7500" \\
        wsgi-reproxy serve reproxy.conf app:app

or give any WSGI server the already wrapped ``application``::

    gunicorn app:application
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response, abort, current_app, request, send_from_directory

from wsgi_reproxy import ReproxyMiddleware, load_config

app = Flask(__name__)
# Flask's own offload switch, unchanged: send_file() answers with an empty
# body and X-Sendfile, which the middleware serves (XSendFile On in
# reproxy.conf, below XSendFilePath).
app.config["USE_X_SENDFILE"] = True
#: Local files served by send_from_directory.
FILES_DIR = Path(__file__).with_name("files")
# The storage nodes, in the order to try them: a MogileFS tracker would hand
# out this list per file; here every node holds every file.
app.config["STORAGE_NODES"] = os.environ.get(
    "STORAGE_NODES", "http://127.0.0.1:7500 http://127.0.0.1:7501"
).split()

# Stand-ins for the database: who a token belongs to, and which user may read
# which file, stored under which key on the nodes.
TOKENS = {"alice-token": "alice", "bob-token": "bob"}
FILES = {
    "report.pdf": {
        "key": "dev1/0/000/042.fid",
        "readers": {"alice"},
        "type": "application/pdf",
    },
    "holiday.jpg": {
        "key": "dev1/0/000/043.fid",
        "readers": {"alice", "bob"},
        "type": "image/jpeg",
    },
}


@app.get("/download/<name>")
def download(name: str) -> Response:
    user = TOKENS.get(request.args.get("token", ""))
    if user is None:
        abort(403)
    meta = FILES.get(name)
    # 404 rather than 403 for a file the user may not read: do not confirm
    # that it exists.
    if meta is None or user not in meta["readers"]:
        abort(404)
    nodes = current_app.config["STORAGE_NODES"]
    response = Response(b"", content_type=meta["type"])
    # Content-Type and Content-Disposition are the app's to choose: the
    # config's PreserveHeaders keeps them over the storage node's.
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["X-Reproxy-Url"] = " ".join(f"{n}/{meta['key']}" for n in nodes)
    return response


@app.get("/local/<name>")
def local(name: str) -> Response:
    if TOKENS.get(request.args.get("token", "")) is None:
        abort(403)
    # send_from_directory refuses names outside FILES_DIR (404); the
    # middleware checks again, with symlinks resolved, against XSendFilePath.
    return send_from_directory(FILES_DIR, name, as_attachment=True)


# For WSGI servers other than ``wsgi-reproxy serve``: the same app, wrapped.
application = ReproxyMiddleware(
    app, load_config(Path(__file__).with_name("reproxy.conf"))
)
