"""``host[:port]`` text, split the one way the parser and the resolver share.

``ServerName``/``ServerAlias`` at load time and the request's ``Host`` at run
time go through :func:`split_host_port`::

    split_host_port("[::1]:8080")   # ("[::1]", "8080")
"""

from __future__ import annotations


def split_host_port(text: str) -> tuple[str, str]:
    """``"[::1]:80"`` -> ``("[::1]", "80")``; ``"a.b"`` -> ``("a.b", "")``."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return text, ""
        rest = text[end + 1 :]
        return text[: end + 1], rest[1:] if rest.startswith(":") else ""
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, ""


def host_name(value: str) -> str:
    """``ServerName https://Www.Example.com:443`` -> ``www.example.com``."""
    if "://" in value:
        value = value.split("://", 1)[1]
    return split_host_port(value.lower())[0]
