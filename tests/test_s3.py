"""S3 presigned URLs as reproxy targets: boto3 signs, moto's server answers.

moto does not check signatures, so the server here is moto's
``ThreadedMotoServer`` with a check in front that does what S3 does: verify
the SigV4 query signature, method included, and answer 403 when it does not
match (a URL presigned for GET is refused to a HEAD).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
import webtest
from conftest import make_bytes

from wsgi_reproxy import ReproxyMiddleware, parse_config

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")
from botocore.config import Config  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

SECRET = "s3-test-secret"
KEY = "reports/2026 annual.bin"
DATA = make_bytes(3 * 1024 * 1024 + 7, "s3")
DENIED = b"<Error><Code>SignatureDoesNotMatch</Code></Error>"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature_ok(method: str, raw_path: str, query: str, host: str) -> bool:
    """S3's check of a SigV4 presigned URL (AWS SigV4 "query string auth")."""
    params = parse_qsl(query, keep_blank_values=True)
    given = dict(params)
    if "X-Amz-Signature" not in given:
        return True  # boto3's own (header-signed) calls: not what we test
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(p for p in params if p[0] != "X-Amz-Signature")
    )
    canonical = "\n".join(
        [
            method,
            raw_path,
            canonical_query,
            f"host:{host}\n",
            "host",
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = given["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            given["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    day, region, service, _ = scope.split("/")
    key = _hmac(("AWS4" + SECRET).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given["X-Amz-Signature"])


class SigningMotoServer(moto_server.ThreadedMotoServer):  # type: ignore[misc]
    """moto's threaded server with S3's presigned-URL check in front; it
    records ``(method, path)`` of every presigned request."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.seen: list[tuple[str, str]] = []

    def _server_entry(self) -> None:
        app = moto_server.DomainDispatcherApplication(moto_server.create_backend_app)

        def checked(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            raw = environ.get("RAW_URI") or environ["PATH_INFO"]
            path, _, query = raw.partition("?")
            if "X-Amz-Signature" in query:
                self.seen.append((environ["REQUEST_METHOD"], path))
            if not signature_ok(
                environ["REQUEST_METHOD"], path, query, environ["HTTP_HOST"]
            ):
                start_response("403 Forbidden", [("Content-Length", str(len(DENIED)))])
                return [DENIED]
            result: Iterable[bytes] = app(environ, start_response)
            return result

        self._server = make_server(self._ip_address, self._port, checked, True)
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[SigningMotoServer, Any]]:
    server = SigningMotoServer()
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket="files-bucket")
    client.put_object(Bucket="files-bucket", Key=KEY, Body=DATA)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()
        server._server.server_close()


def presign(client: Any, key: str = KEY, token: str | None = None) -> str:
    if token is not None:
        host = client.meta.endpoint_url
        client = boto3.client(
            "s3",
            endpoint_url=host,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key=SECRET,
            aws_session_token=token,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
    url: str = client.generate_presigned_url(
        "get_object", Params={"Bucket": "files-bucket", "Key": key}, ExpiresIn=600
    )
    return url


def reproxying(headers: list[tuple[str, str]], conf: str) -> webtest.TestApp:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", list(headers))
        return [b"APP BODY"]

    text = "AllowReproxy On\nReproxyAllowTargets http://127.0.0.1:*/\n" + conf
    return webtest.TestApp(ReproxyMiddleware(app, parse_config(text)))


def test_presigned_get_streams_the_object(s3: Any) -> None:
    server, client = s3
    res = reproxying([("X-Reproxy-Url", presign(client))], "").get("/")
    assert res.status_int == 200
    assert res.body == DATA
    assert res.headers["Content-Length"] == str(len(DATA))
    assert res.headers["ETag"] == f'"{hashlib.md5(DATA).hexdigest()}"'


def test_presigned_range_is_206(s3: Any) -> None:
    _, client = s3
    res = reproxying([("X-Reproxy-Url", presign(client))], "").get(
        "/", headers={"Range": "bytes=1000-1999"}, status=206
    )
    assert res.body == DATA[1000:2000]
    assert res.headers["Content-Range"] == f"bytes 1000-1999/{len(DATA)}"


def test_head_as_head_is_refused_by_s3_so_502(s3: Any) -> None:
    server, client = s3
    reproxying([("X-Reproxy-Url", presign(client))], "").head("/", status=502)
    assert server.seen[-1][0] == "HEAD"


def test_head_sent_as_get_gets_the_objects_headers_and_no_body(s3: Any) -> None:
    server, client = s3
    res = reproxying(
        [("X-Reproxy-Url", presign(client))], "ReproxyHeadMethod GET\n"
    ).head("/")
    assert res.status_int == 200
    assert res.body == b""
    assert res.headers["Content-Length"] == str(len(DATA))
    assert server.seen[-1] == ("GET", "/files-bucket/reports/2026%20annual.bin")


def test_long_session_token_url_is_accepted_up_to_max_url_length(s3: Any) -> None:
    _, client = s3
    url = presign(client, token="T" * 3000)
    assert 3000 < len(url) < 8192
    assert reproxying([("X-Reproxy-Url", url)], "").get("/").body == DATA
    # The old cap refuses it: nothing valid to fetch, 502.
    reproxying([("X-Reproxy-Url", url)], "ReproxyMaxUrlLength 2048\n").get(
        "/", status=502
    )


def test_object_missing_everywhere_is_404(s3: Any) -> None:
    _, client = s3
    urls = f"{presign(client, 'gone-1')} {presign(client, 'gone-2')}"
    res = reproxying([("X-Reproxy-Url", urls)], "").get("/", status=404)
    assert DATA[:100] not in res.body


def test_tampered_signature_is_refused(s3: Any) -> None:
    _, client = s3
    url = presign(client).replace("X-Amz-Signature=", "X-Amz-Signature=0")
    reproxying([("X-Reproxy-Url", url)], "").get("/", status=502)


def test_accel_redirect_to_s3_keeps_the_signed_path_and_query(s3: Any) -> None:
    # nginx: location /s3/ { internal; proxy_pass http://s3/files-bucket/; }
    server, client = s3
    url = presign(client)
    base = client.meta.endpoint_url + "/files-bucket/"
    signed = url[len(base) :]  # "reports/2026%20annual.bin?X-Amz-..."
    res = reproxying(
        [("X-Accel-Redirect", "/s3/" + signed)],
        f"ReproxyAccelRedirect /s3/ {base}\nReproxyHeadMethod GET\n",
    )
    assert res.get("/", headers={"Range": "bytes=-3"}, status=206).body == DATA[-3:]
    head = res.head("/")
    assert head.headers["Content-Length"] == str(len(DATA))


def test_signature_check_itself_refuses_the_wrong_method(s3: Any) -> None:
    url = presign(s3[1])
    path, _, query = url.split("//", 1)[1].partition("/")[2].partition("?")
    host = url.split("/")[2]
    assert signature_ok("GET", "/" + path, query, host)
    assert not signature_ok("HEAD", "/" + path, query, host)
