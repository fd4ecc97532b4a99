"""Target URL safety: input limits, the allow-list and its bypass attempts."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import pytest
import urllib3.util

from wsgi_reproxy.config.allowlist import compile_target
from wsgi_reproxy.config.settings import Settings
from wsgi_reproxy.config.urls import parse_url
from wsgi_reproxy.fetch.targets import check_url, split_urls

ALLOW = (
    "http://allowed.example/",
    "http://10.0.0.*:7500/",
    "https://*.blob.internal/",
    "http://[2001:db8::7]:7500/dev/",
    "http://store.example:7500/dev/",
)
LISTED = Settings(allow_targets=ALLOW, origins=(("allow_targets", "conf:12"),))
OPEN = Settings()
OUTSIDE = "outside ReproxyAllowTargets (defined at conf:12)"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://allowed.example/", id="exact-host"),
        pytest.param("http://allowed.example", id="empty-path-means-slash"),
        pytest.param("http://allowed.example/a/b?x=1#f", id="query-fragment"),
        pytest.param("http://allowed.example:80/x", id="explicit-default-port"),
        pytest.param("HTTP://ALLOWED.Example/x", id="mixed-case-scheme-host"),
        pytest.param("http://allowed.example./x", id="trailing-dot-same-name"),
        pytest.param("http://10.0.0.7:7500/dev/1.fid", id="ipv4-glob"),
        pytest.param("http://10.0.0.255:7500/", id="ipv4-glob-last-octet"),
        pytest.param("https://a.blob.internal/k", id="name-glob"),
        pytest.param("https://A-1.BLOB.internal./k", id="name-glob-case-dot"),
        pytest.param("http://[2001:db8::7]:7500/dev/1", id="ipv6"),
        pytest.param("http://[2001:DB8:0:0::7]:7500/dev/1", id="ipv6-other-spelling"),
        pytest.param("http://store.example:7500/dev/a/../b", id="dot-segment-inside"),
        pytest.param("http://store.example:7500/dev", id="prefix-itself"),
        pytest.param("http://store.example:7500/dev/%41", id="unreserved-escape"),
    ],
)
def test_allowed_url_is_fetched(url: str) -> None:
    assert check_url(url, LISTED) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # userinfo: "@" moves the real host to the right of it
        pytest.param(
            "http://allowed.example@evil/", "userinfo in URL", id="at-allowed-left"
        ),
        pytest.param(
            "http://evil@allowed.example/", "userinfo in URL", id="at-evil-left"
        ),
        pytest.param(
            "http://allowed.example:7500@evil:7500/",
            "userinfo in URL",
            id="at-port-lookalike",
        ),
        pytest.param("http://a@b@allowed.example/", "userinfo in URL", id="double-at"),
        # host suffix / prefix look-alikes
        pytest.param(
            "http://allowed.example.evil/", OUTSIDE, id="allowed-as-subdomain"
        ),
        pytest.param("http://allowed.examplee/", OUTSIDE, id="host-string-prefix"),
        pytest.param("http://evilallowed.example/", OUTSIDE, id="host-string-suffix"),
        pytest.param("http://x.allowed.example/", OUTSIDE, id="subdomain-of-exact"),
        pytest.param("http://allowed.example.evil./", OUTSIDE, id="trailing-dot-evil"),
        pytest.param("http://allowed.example../", "bad host", id="double-trailing-dot"),
        pytest.param("http://.allowed.example/", "bad host", id="leading-dot"),
        pytest.param(
            "http://allowed%2eexample/", "percent-encoded host", id="encoded-dot"
        ),
        pytest.param(
            "http://%61llowed.example/", "percent-encoded host", id="encoded-letter"
        ),
        pytest.param(
            "http://allowed\uff0eexample/",
            "non-ASCII character in URL",
            id="fullwidth-dot",
        ),
        pytest.param(
            "http://allowed.exam\u0440le/", "non-ASCII character in URL", id="cyrillic"
        ),
        # globs stay within one label
        pytest.param(
            "http://10.0.0.1.evil.com:7500/", OUTSIDE, id="ipv4-glob-as-subdomain"
        ),
        pytest.param("http://10.0.0.a:7500/", OUTSIDE, id="ipv4-glob-name-label"),
        pytest.param("https://blob.internal/", OUTSIDE, id="glob-needs-a-label"),
        pytest.param("https://a.b.blob.internal/", OUTSIDE, id="glob-one-label-only"),
        pytest.param(
            "https://blob.internal.evil/", OUTSIDE, id="glob-suffix-lookalike"
        ),
        pytest.param("https://a.blob.internal.evil/", OUTSIDE, id="glob-then-evil"),
        # ambiguous IPv4 forms getaddrinfo() reads as other addresses
        pytest.param(
            "http://167772161:7500/", "non-canonical IPv4 address", id="ipv4-integer"
        ),
        pytest.param(
            "http://0x0a.0.0.1:7500/", "non-canonical IPv4 address", id="ipv4-hex"
        ),
        pytest.param(
            "http://010.0.0.1:7500/", "non-canonical IPv4 address", id="ipv4-octal"
        ),
        pytest.param(
            "http://10.0.1:7500/", "non-canonical IPv4 address", id="ipv4-short"
        ),
        pytest.param(
            "http://10.0.0.256:7500/", "non-canonical IPv4 address", id="ipv4-256"
        ),
        # IPv6 literals are addresses, not strings
        pytest.param(
            "http://[2001:db8::8]:7500/dev/", OUTSIDE, id="ipv6-other-address"
        ),
        pytest.param("http://[::ffff:10.0.0.1]:7500/", OUTSIDE, id="ipv4-mapped-ipv6"),
        pytest.param(
            "http://[2001:db8::7%25eth0]:7500/dev/",
            "zone id in IPv6 literal",
            id="ipv6-zone",
        ),
        pytest.param(
            "http://[2001:db8::7:7500/dev/", "bad IPv6 literal", id="ipv6-unclosed"
        ),
        pytest.param("http://[evil]:7500/dev/", "bad IPv6 literal", id="ipv6-name"),
        pytest.param("http://[2001:db8::7]x/", "bad host", id="ipv6-trailing-junk"),
        # ports
        pytest.param("http://allowed.example:8080/", OUTSIDE, id="port-outside"),
        pytest.param("http://10.0.0.7/", OUTSIDE, id="port-missing-means-80"),
        pytest.param("http://10.0.0.7:75000/", "bad port", id="port-too-big"),
        pytest.param("http://10.0.0.7:0/", "bad port", id="port-zero"),
        pytest.param("http://allowed.example:/", "bad port", id="port-empty"),
        pytest.param("http://allowed.example:80x/", "bad port", id="port-junk"),
        pytest.param("https://allowed.example/", OUTSIDE, id="scheme-differs"),
        # paths
        pytest.param(
            "http://store.example:7500/devices", OUTSIDE, id="path-not-segment"
        ),
        pytest.param("http://store.example:7500/dev/../admin", OUTSIDE, id="dot-dot"),
        pytest.param(
            "http://store.example:7500/dev/%2e%2e/admin", OUTSIDE, id="encoded-dot-dot"
        ),
        pytest.param(
            "http://store.example:7500/dev/.%2E/admin",
            OUTSIDE,
            id="half-encoded-dot-dot",
        ),
        pytest.param(
            "http://store.example:7500/dev%2f..%2fadmin", OUTSIDE, id="encoded-slash"
        ),
        # path parameters on a dot segment: servlet containers strip ";..."
        # before removing dot segments, so "/dev/..;/admin" is their "/admin"
        pytest.param(
            "http://store.example:7500/dev/..;/admin", OUTSIDE, id="dot-dot-semicolon"
        ),
        pytest.param(
            "http://store.example:7500/dev/..;x=1/admin",
            OUTSIDE,
            id="dot-dot-parameter",
        ),
        pytest.param("http://store.example:7500/dev/.;/x", OUTSIDE, id="dot-semicolon"),
        pytest.param(
            "http://store.example:7500/dev/%2e%2e;/admin",
            OUTSIDE,
            id="encoded-dot-dot-semicolon",
        ),
        pytest.param(
            "http://store.example:7500/dev/%2E.;jsessionid=1/admin",
            OUTSIDE,
            id="half-encoded-dot-dot-semicolon",
        ),
        pytest.param(
            "http://store.example:7500/dev/..%3b/admin",
            OUTSIDE,
            id="dot-dot-encoded-semicolon",
        ),
        pytest.param(
            "http://store.example:7500/dev/sub/..;/..;/admin",
            OUTSIDE,
            id="two-dot-dot-semicolons",
        ),
        pytest.param(
            "http://store.example:7500/dev/x%5c..%5cadmin",
            OUTSIDE,
            id="encoded-backslash",
        ),
        pytest.param("http://store.example:7500/DEV/", OUTSIDE, id="path-case-matters"),
        pytest.param(
            "http://store.example:7500/dev/%zz",
            "bad percent-escape in path",
            id="bad-escape",
        ),
        # characters
        pytest.param(
            "http://allowed.example\\@evil/",
            "backslash in URL",
            id="backslash-authority",
        ),
        pytest.param(
            "http://evil\\allowed.example/", "backslash in URL", id="backslash-host"
        ),
        pytest.param(
            "http://allowed.example/\tx", "control character in URL", id="tab"
        ),
        pytest.param(
            "http://allowed.example/\nx", "control character in URL", id="newline"
        ),
        pytest.param(
            "http://allowed.example/\r\nHost: evil",
            "control character in URL",
            id="crlf",
        ),
        pytest.param(
            "http://allowed.example/\x00", "control character in URL", id="nul"
        ),
        pytest.param(
            "http://allowed.example/\x7f", "control character in URL", id="del"
        ),
        pytest.param(
            "http://allowed.example/\x85", "control character in URL", id="c1-nel"
        ),
        pytest.param("http://allowed.example/a b", "blank in URL", id="space"),
        pytest.param("http://allowed.example/a\u00a0b", "blank in URL", id="nbsp"),
        pytest.param(
            "http://allowed.example/%0d%0aHost:evil",
            "encoded control character in URL",
            id="encoded-crlf",
        ),
        pytest.param(
            "http://allowed.example/%00",
            "encoded control character in URL",
            id="encoded-nul",
        ),
        # schemes and shapes
        pytest.param("file:///etc/passwd", "scheme 'file' not allowed", id="file"),
        pytest.param(
            "gopher://allowed.example/", "scheme 'gopher' not allowed", id="gopher"
        ),
        pytest.param("ftp://allowed.example/", "scheme 'ftp' not allowed", id="ftp"),
        pytest.param(
            "FILE:///etc/passwd", "scheme 'file' not allowed", id="file-upper"
        ),
        pytest.param("javascript:alert(1)", "not absolute", id="no-authority"),
        pytest.param("//allowed.example/", "not absolute", id="scheme-relative"),
        pytest.param("/dev/1.fid", "not absolute", id="path-only"),
        pytest.param("http:/allowed.example/", "not absolute", id="one-slash"),
        pytest.param("http:allowed.example", "not absolute", id="no-slashes"),
        pytest.param("http:///x", "no host", id="no-host"),
        pytest.param("", "not absolute", id="empty"),
        pytest.param(
            "http://allowed.example/" + "a" * 8192,
            "URL longer than 8192",
            id="too-long",
        ),
    ],
)
def test_bypass_attempt_is_refused(url: str, reason: str) -> None:
    assert check_url(url, LISTED) == reason


def test_userinfo_allowed_still_matches_the_real_host() -> None:
    assert check_url("http://u:p@allowed.example/", LISTED, allow_userinfo=True) is None
    assert (
        check_url("http://allowed.example:7500@evil:7500/", LISTED, allow_userinfo=True)
        == OUTSIDE
    )
    assert (
        check_url("http://allowed.example@evil/", LISTED, allow_userinfo=True)
        == OUTSIDE
    )


def test_length_cap_is_configurable() -> None:
    url = "http://allowed.example/" + "a" * 20
    assert check_url(url, LISTED, max_length=len(url)) is None
    assert (
        check_url(url, LISTED, max_length=len(url) - 1)
        == f"URL longer than {len(url) - 1}"
    )


def test_length_cap_defaults_to_8192_and_follows_max_url_length() -> None:
    # SPEC §3 ReproxyMaxUrlLength: a presigned URL with a session token is
    # longer than the old 2,048 cap.
    url = "http://allowed.example/" + "a" * (8192 - 23)
    assert len(url) == 8192
    assert check_url(url, LISTED) is None
    assert check_url(url + "a", LISTED) == "URL longer than 8192"
    short = Settings(allow_targets=ALLOW, max_url_length=100)
    assert check_url(url, short) == "URL longer than 100"


def test_refusal_without_origin_has_no_location() -> None:
    settings = Settings(allow_targets=ALLOW)
    assert check_url("http://evil/", settings) == "outside ReproxyAllowTargets"


def test_empty_allow_list_accepts_any_http_url() -> None:
    assert check_url("http://anything.example:1234/x", OPEN) is None
    assert check_url("https://[::1]/", OPEN) is None
    assert check_url("ftp://anything.example/", OPEN) == "scheme 'ftp' not allowed"
    assert check_url("http://a@b/", OPEN) == "userinfo in URL"


def test_bad_pattern_in_settings_refuses_every_url() -> None:
    settings = Settings(allow_targets=("ftp://x/",))
    reason = check_url("http://x/", settings)
    assert reason is not None and "bad ReproxyAllowTargets pattern 'ftp://x/'" in reason


@pytest.mark.parametrize(
    ("pattern", "url", "allowed"),
    [
        pytest.param("http://*/", "http://any.example/x", True, id="any-host"),
        pytest.param("http://*/", "http://[::1]/x", True, id="any-host-ipv6"),
        pytest.param(
            "http://*/", "http://any.example:81/", False, id="any-host-port-80"
        ),
        pytest.param("http://*:*/", "http://any.example:81/", True, id="any-port"),
        pytest.param("http://h:*/dev", "http://h:9/dev/x", True, id="any-port-path"),
        pytest.param(
            "http://h:*/dev", "http://h:9/devx", False, id="any-port-path-boundary"
        ),
        pytest.param(
            "http://store-*.int/", "http://store-12.int/", True, id="glob-in-label"
        ),
        pytest.param(
            "http://store-*.int/", "http://store-.int/", True, id="glob-empty-in-label"
        ),
        pytest.param(
            "http://store-*.int/", "http://store-1.x.int/", False, id="glob-no-dot"
        ),
        pytest.param(
            "http://store-*.int/", "http://xstore-1.int/", False, id="glob-anchored"
        ),
        pytest.param(
            "http://10.*.0.1/", "http://10.200.0.1/", True, id="ipv4-middle-glob"
        ),
        pytest.param("http://10.0.0.1/", "http://10.0.0.1/", True, id="ipv4-literal"),
        pytest.param(
            "http://10.0.0.1/", "http://10.0.0.10/", False, id="ipv4-literal-prefix"
        ),
        pytest.param(
            "http://H.Example./", "http://h.example/", True, id="pattern-normalised"
        ),
        pytest.param(
            "http://h/dev/", "http://h/dev", True, id="slash-prefix-matches-dir"
        ),
        pytest.param("http://h/dev/", "http://h/dev/x/../../y", False, id="climb-out"),
        pytest.param(
            "http://h/a%2Fb/", "http://h/a%2fb/c", False, id="encoded-slash-never"
        ),
        pytest.param("http://h", "http://h/a%2fb", True, id="encoded-slash-ok-at-root"),
        pytest.param(
            "http://h/dev/", "http://h/x/%2e%2e/dev/1", False, id="encoded-dot-dot-into"
        ),
        pytest.param("http://h/dev/", "http://h/dev/%2e/1", False, id="encoded-dot"),
        pytest.param(
            "http://h/", "http://h/x/%2e%2e/dev/1", True, id="encoded-dot-at-root"
        ),
        pytest.param(
            "http://h/dev/", "http://h/x/../dev/1", True, id="plain-dot-dot-into"
        ),
        pytest.param(
            "http://h/dev/", "http://h/dev/a%2eb", True, id="encoded-dot-in-name"
        ),
        pytest.param("http://h/dev/", "http://h/dev/a;v=1", True, id="param-on-name"),
        pytest.param(
            "http://h/dev/", "http://h/dev/...;x", True, id="three-dots-param"
        ),
        pytest.param("http://h/dev/", "http://h/dev/..;/x", False, id="dot-dot-param"),
        pytest.param(
            "http://h/", "http://h/dev/..;/x", True, id="dot-dot-param-at-root"
        ),
        pytest.param(
            "http://h/%7Euser/", "http://h/~user/x", True, id="unreserved-escape-same"
        ),
        pytest.param("https://h/", "http://h:443/", False, id="scheme-not-port"),
        pytest.param("http://h/dev/", "http://h/dev/x/..", True, id="final-dot-dot"),
        pytest.param("http://h/dev/", "http://h/dev/..", False, id="final-dot-dot-out"),
    ],
)
def test_pattern_matching(pattern: str, url: str, allowed: bool) -> None:
    assert compile_target(pattern).matches(parse_url(url)) is allowed


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        pytest.param("ftp://x/", "scheme 'ftp' not allowed", id="scheme"),
        pytest.param("x/", "not absolute", id="relative"),
        pytest.param("http://u@x/", "userinfo not allowed", id="userinfo"),
        pytest.param("http://x/?a", "query or fragment not allowed", id="query"),
        pytest.param("http://x/#a", "query or fragment not allowed", id="fragment"),
        pytest.param("http://10.*/", "bad IPv4 pattern", id="short-ipv4-glob"),
        pytest.param("http://010.0.0.*/", "bad IPv4 pattern", id="octal-ipv4-glob"),
        pytest.param(
            "http://[::*]/", "'*' not allowed in an IPv6 literal", id="ipv6-glob"
        ),
        pytest.param("http://a b/", "blank in URL", id="blank"),
        pytest.param("http://x:port/", "bad port", id="port"),
        pytest.param("http://x.01/", "non-canonical IPv4", id="numeric-tail"),
        pytest.param("http://x%2e/", "percent-encoded host", id="encoded-host"),
        pytest.param("http://a.*.1/", "non-canonical IPv4", id="glob-numeric-tail"),
        pytest.param("http://x/%g0", "bad percent-escape", id="bad-escape"),
    ],
)
def test_bad_pattern_raises_readable_value_error(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match="bad ReproxyAllowTargets pattern") as info:
        compile_target(pattern)
    assert repr(pattern) in str(info.value)
    assert message in str(info.value)


def test_compiled_patterns_are_cached() -> None:
    assert compile_target("http://cached.example/") is compile_target(
        "http://cached.example/"
    )


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://Allowed.Example./a/../b?q", id="name"),
        pytest.param("https://10.0.0.7:7500/x", id="ipv4"),
        pytest.param("http://[2001:DB8::7]:7500/", id="ipv6"),
        pytest.param("http://h", id="no-path"),
    ],
)
def test_accepted_url_names_the_host_urllib3_connects_to(url: str) -> None:
    """Our verdict is about the host urllib3 will actually dial."""
    ours = parse_url(url)
    theirs = urllib3.util.parse_url(url)
    assert theirs.host is not None
    assert ours.host == theirs.host.strip("[]").rstrip(".").lower()
    assert ours.port == (theirs.port or {"http": 80, "https": 443}[ours.scheme])
    assert ours.path == (theirs.path or "/")


@pytest.mark.parametrize(
    ("values", "limit", "urls", "dropped"),
    [
        pytest.param(["a b"], 16, ["a", "b"], 0, id="space"),
        pytest.param([" a\tb\r\n c  "], 16, ["a", "b", "c"], 0, id="any-whitespace"),
        pytest.param(
            ["a", "b c"], 16, ["a", "b", "c"], 0, id="several-headers-in-order"
        ),
        pytest.param(["", "  "], 16, [], 0, id="empty"),
        pytest.param(["a b c", "d"], 2, ["a", "b"], 2, id="limit"),
        pytest.param(
            [" ".join(str(i) for i in range(20))],
            16,
            [str(i) for i in range(16)],
            4,
            id="default-limit",
        ),
    ],
)
def test_split_urls(
    values: list[str], limit: int, urls: list[str], dropped: int
) -> None:
    result = split_urls(values, limit)
    assert result == urls
    assert result.dropped == dropped


# Pieces an attacker splices into URLs; hypothesis combines them.
_PIECES = [
    "allowed.example", "evil", ".", "..", "@", ":", "/", "\\", "%2e", "%2f", "%40",
    "#", "?", "[", "]", "::1", "10.0.0.1", "7500", "*", "%", "A", "\t", " ", "\u3002",
    "http://", "https://", "//", "0x7f", "%00",
]  # fmt: skip


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    st.lists(st.sampled_from(_PIECES), max_size=8),
    st.lists(st.sampled_from(_PIECES), max_size=6),
)
def test_accepted_url_always_dials_an_allowed_host(
    authority: list[str], rest: list[str]
) -> None:
    """Whatever the splice, an accepted URL's host per urllib3 is allowed."""
    url = "http://" + "".join(authority) + "/" + "".join(rest)
    settings = Settings(allow_targets=("http://allowed.example/", "http://10.0.0.*/"))
    if check_url(url, settings, allow_userinfo=True) is not None:
        return
    parsed = urllib3.util.parse_url(url)
    assert parsed.scheme == "http"
    assert parsed.port in (None, 80)
    host = (parsed.host or "").lower().rstrip(".")
    assert host == "allowed.example" or (
        host.startswith("10.0.0.") and host.count(".") == 3
    ), url
