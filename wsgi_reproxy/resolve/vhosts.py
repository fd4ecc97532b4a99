"""Which virtual host serves a request.

Usage::

    from wsgi_reproxy.resolve.vhosts import VirtualHosts, request_host

    vhosts = VirtualHosts(parsed.vhosts, notes)  # once, at start-up
    host, port = request_host(environ)           # per request
    vhosts.choose(host, port)                    # index into parsed.vhosts, or -1

Virtual host
    The request's host is ``HTTP_HOST`` (lower-cased, trailing dot and port
    stripped, ``[v6]`` brackets kept), else ``SERVER_NAME``.  Its port is the
    Host header's port, else the scheme's default (80/443) when a Host header
    without a port was sent, else ``SERVER_PORT``: behind a proxy gunicorn sees
    its own ``SERVER_PORT``, while the Host header still names the port the
    client used, which is what ``<VirtualHost *:443>`` means.  Candidates are
    the virtual hosts with an address whose port is ``*``, missing, or that
    port; the address part is not compared (WSGI does not tell the local
    address, and ``*`` and ``_default_`` are the usual forms).  Of the
    candidates the first whose ``ServerName``/``ServerAlias`` matches the host
    (``*``/``?`` wildcards) wins, else the first candidate, Apache's default
    virtual host rule.  File order decides, not exactness: an earlier
    ``ServerAlias *.example.com`` takes ``files.example.com`` from a later
    ``ServerName files.example.com``, as Apache 2.4.71 does (httpd's
    ``check_hostalias``).  Without candidates only the main server applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..config.hosts import split_host_port
from ..config.records import VirtualHost

_DEFAULT_PORTS = {"http": 80, "https": 443}


def request_host(environ: Mapping[str, Any]) -> tuple[str, int | None]:
    """The ``(host, port)`` a request addressed; see the module docstring."""
    header = environ.get("HTTP_HOST")
    if isinstance(header, str) and header.strip():
        host, port_text = split_host_port(header.strip().lower())
        port = _port(port_text)
        if port is None:
            port = _DEFAULT_PORTS.get(str(environ.get("wsgi.url_scheme", "http")))
        if port is None:
            port = _port(str(environ.get("SERVER_PORT", "")))
    else:
        host = str(environ.get("SERVER_NAME", "")).lower()
        port = _port(str(environ.get("SERVER_PORT", "")))
    # "example.com." names the same host as "example.com" (httpd fix_hostname)
    return host.rstrip("."), port


def _port(text: str) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= 5:
        return int(text)
    return None


class VirtualHosts:
    """Chooses the virtual host for a ``(host, port)``; see the module docstring."""

    def __init__(self, vhosts: tuple[VirtualHost, ...], notes: list[str]) -> None:
        ports: list[frozenset[int] | None] = []  # None: any port
        for vhost in vhosts:
            numbers: set[int] = set()
            any_port = False
            for address in vhost.addresses:
                text = split_host_port(address)[1]
                if text in ("", "*"):
                    any_port = True
                elif (number := _port(text)) is not None:
                    numbers.add(number)
                else:
                    notes.append(f"{vhost.where}: bad port in address {address!r}")
            ports.append(None if any_port else frozenset(numbers))
        self._vhosts = vhosts
        every = {number for p in ports if p is not None for number in p}
        self._by_port = {
            port: _NameTable(
                vhosts, [i for i, p in enumerate(ports) if p is None or port in p]
            )
            for port in every
        }
        self._other_port = _NameTable(
            vhosts, [i for i, p in enumerate(ports) if p is None]
        )
        self._any_port = _NameTable(vhosts, list(range(len(vhosts))))

    def choose(self, host: str, port: int | None) -> int:
        """The index of the virtual host serving the request, -1 for none."""
        if port is None:
            table = self._any_port
        else:
            table = self._by_port.get(port, self._other_port)
        return table.choose(host)


class _NameTable:
    """Name lookup among the virtual hosts listening on one port."""

    def __init__(self, vhosts: tuple[VirtualHost, ...], candidates: list[int]) -> None:
        self.default = candidates[0] if candidates else -1
        self.exact: dict[str, int] = {}
        self.wild: list[tuple[int, re.Pattern[str]]] = []
        for i in candidates:
            for name in vhosts[i].names:
                if "*" in name or "?" in name:
                    # ServerAlias wildcards: only * and ? (ap_strcasecmp_match)
                    regex = re.escape(name).replace(r"\*", ".*").replace(r"\?", ".")
                    self.wild.append((i, re.compile(regex + r"\Z", re.IGNORECASE)))
                else:
                    self.exact.setdefault(name.lower(), i)

    def choose(self, host: str) -> int:
        found = self.exact.get(host, -1)
        for i, rx in self.wild:
            if found >= 0 and i > found:
                break
            if rx.match(host):
                return i
        return found if found >= 0 else self.default
