"""The one-pass parse of a response head agrees with the line-by-line one.

:func:`wsgi_reproxy.fetch.head._parse_block` first tries one regex over the
whole head (issue 16) and falls back to :func:`_parse_lines`, the strict
parse of issue 11, for anything it refuses.  These pin that the fast path
never accepts a head the strict parse refuses, and returns exactly what the
strict parse returns for the heads it accepts.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgi_reproxy.fetch.head import MAX_HEADERS, _parse_block, _parse_lines
from wsgi_reproxy.fetch.wire import FramingError

NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 01 Dec 2026 23:40:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
    b'Connection: keep-alive\r\nETag: "6759c5a0-400"\r\nAccept-Ranges: bytes\r\n'
)


def outcome(parse: object, block: bytes) -> object:
    try:
        return parse(block)  # type: ignore[operator]
    except FramingError as exc:
        return ("refused", str(exc))


def test_a_typical_head_parses_to_its_exact_fields() -> None:
    assert _parse_block(NGINX) == (
        "1.1",
        200,
        "OK",
        [
            ("Server", "nginx"),
            ("Date", "Tue, 01 Dec 2026 23:40:00 GMT"),
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", "1024"),
            ("Connection", "keep-alive"),
            ("ETag", '"6759c5a0-400"'),
            ("Accept-Ranges", "bytes"),
        ],
    )


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (NGINX + b"A: b\rC: d\r\n", "bare CR in the response head"),
        (NGINX + b"A: b\x00\r\n", "NUL in the response head"),
        (NGINX + b" folded\r\n", "obsolete line folding in a response header"),
        (NGINX + b"No colon\r\n", "bad response header line b'No colon'"),
        (b"HTTP/2 200 OK\r\n", "bad status line b'HTTP/2 200 OK'"),
        (
            b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * (MAX_HEADERS + 1),
            f"more than {MAX_HEADERS} response header lines",
        ),
    ],
    ids=["bare-cr", "nul", "fold", "no-colon", "version", "too-many"],
)
def test_a_refused_head_is_refused_with_the_strict_parse_reason(
    block: bytes, reason: str
) -> None:
    with pytest.raises(FramingError) as caught:
        _parse_block(block)
    assert str(caught.value) == reason


def test_exactly_max_headers_are_accepted() -> None:
    block = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * MAX_HEADERS
    assert _parse_block(block) == _parse_lines(block)
    assert len(_parse_block(block)[3]) == MAX_HEADERS


_TOKEN = st.text("abcXYZ-_!#~09", min_size=1, max_size=8)
_VALUE = st.text(
    st.characters(min_codepoint=0, max_codepoint=255), min_size=0, max_size=12
)


@given(
    st.lists(st.tuples(_TOKEN, _VALUE), max_size=8),
    st.sampled_from([b"\r\n", b"\n"]),
    st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 404", b"HTTP/1.1 206 ", b"X"]),
)
def test_one_pass_and_line_by_line_agree_on_any_head(
    fields: list[tuple[str, str]], eol: bytes, status: bytes
) -> None:
    block = status + eol
    for name, value in fields:
        block += name.encode("latin-1") + b": " + value.encode("latin-1") + eol
    assert outcome(_parse_block, block) == outcome(_parse_lines, block)


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=len(NGINX)))
def test_any_bytes_spliced_into_a_head_get_the_strict_verdict(
    junk: bytes, at: int
) -> None:
    block = NGINX[:at] + junk + NGINX[at:]
    if not block.endswith(b"\n"):
        block += b"\n"
    assert outcome(_parse_block, block) == outcome(_parse_lines, block)
