r"""Apache's section patterns, read once at start-up.

Usage::

    from wsgi_reproxy.config.patterns import glob_regex, regex_extension, regex_prefix

    glob_regex("*.php")                   # '[^/]*\\.php'
    regex_prefix(r"^/files/(.*)\.jpg$")   # '/files/'
    regex_extension(r"\.jpg$")            # '.jpg'

A glob (``<Location /a/*>``, ``<Files *.php>``) becomes a regex with APR's
rules; a glob or a regex also tells what every subject it matches must
start with (a literal path prefix) or end with (an extension), which is
where :class:`~wsgi_reproxy.resolve.match.Index` files the section.  Every answer
here errs on the side of "could be anything": an empty prefix or extension
only costs the index a section it has to test on every request.
"""

from __future__ import annotations

import re


def is_glob(pattern: str) -> bool:
    """APR's ``apr_fnmatch_test``: ``*``, ``?`` or a closed ``[...]``."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in "*?":
            return True
        if c == "\\":
            i += 1
        elif c == "[" and "]" in pattern[i + 1 :]:
            return True
        i += 1
    return False


def glob_regex(pattern: str) -> str:
    """Translate an ``apr_fnmatch(..., APR_FNM_PATHNAME)`` pattern to a regex.

    Wildcards never match ``/`` (``*`` -> ``[^/]*``, ``?`` -> ``[^/]``,
    classes exclude ``/``); ``\\x`` is a literal ``x``.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            negate = pattern[i : i + 1] in ("!", "^")
            start = i + 1 if negate else i
            # a "]" right after "[" or "[!" is a member, not the end
            first = start + 1 if pattern[start : start + 1] == "]" else start
            end = pattern.find("]", first)
            if end < 0:
                out.append(re.escape(c))
                continue
            members = "".join(
                "-" if ch == "-" and 0 < k < end - start - 1 else re.escape(ch)
                for k, ch in enumerate(pattern[start:end])
            )
            out.append(f"[^/{members}]" if negate else f"(?!/)[{members}]")
            i = end + 1
        else:
            out.append(re.escape(c))
    return "".join(out)


# Characters that stand for themselves in a regex, and the escapes of
# punctuation that do; enough for the anchored paths real configs use.
_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-~%,;=@!:'&\""
)
_ESCAPED = frozenset(".-/_~\\^$*+?()[]{}|%&,;:=@!#'\" ")


def regex_prefix(regex: str) -> str:
    """Literal text every match of ``^``-anchored *regex* starts with.

    ``"^/files/(.*)\\.jpg$"`` -> ``"/files/"``.  Returns ``""`` when unsure:
    no anchor, an inline flag, a top-level ``|``; the index then falls back
    to testing the section on every request, which is always correct.
    """
    if not regex.startswith("^") or _has_top_level_bar(regex):
        return ""
    out: list[str] = []
    i, n = 1, len(regex)
    while i < n:
        c = regex[i]
        if c in _PLAIN:
            literal, step = c, 1
        elif c == "\\" and i + 1 < n and regex[i + 1] in _ESCAPED:
            literal, step = regex[i + 1], 2
        else:
            break
        following = regex[i + step : i + step + 1]
        if following in ("?", "*", "{"):  # this character may be absent
            break
        out.append(literal)
        if following == "+":
            break
        i += step
    return "".join(out)


def _has_top_level_bar(regex: str) -> bool:
    depth, i, n, in_class = 0, 0, len(regex), False
    while i < n:
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if regex[i + 1 : i + 2] == "^":
                i += 1
            if regex[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth <= 0:
            return True
        i += 1
    return False


def path_segments(prefix: str) -> list[str]:
    """The complete path segments of a literal *prefix* (``"/a/b/c"`` -> a, b)."""
    if not prefix.startswith("/"):
        return []
    return [s for s in prefix.split("/")[1:-1] if s]


def literal_segments(pattern: str) -> list[str]:
    """The leading segments of a glob *pattern* that hold no wildcard."""
    out: list[str] = []
    for segment in path_segments(pattern + "/"):
        if is_glob(segment) or "\\" in segment:
            break
        out.append(segment)
    return out


def path_extension(text: str) -> str:
    """``"/a/b.tar.gz"`` -> ``".gz"``; ``""`` when the last segment has no dot.

    A final newline is ignored: a regex ``$`` also matches before one.
    """
    if text.endswith("\n"):
        text = text[:-1]
    dot = text.rfind(".")
    return text[dot:] if dot > text.rfind("/") else ""


def _key_extension(tail: str) -> str:
    """The :func:`path_extension` every subject ending in literal *tail* has."""
    dot = tail.rfind(".")
    return tail[dot:] if dot >= 0 and "/" not in tail[dot:] else ""


def regex_extension(regex: str) -> str:
    """``"\\.php$"`` -> ``".php"``: the extension a ``$``-anchored match ends in.

    Returns ``""`` when the regex does not end in a literal extension before
    an unescaped ``$``, or may not (inline flags, a top-level ``|``).
    """
    if not regex.endswith("$") or regex.startswith("(?") or _has_top_level_bar(regex):
        return ""
    tail: list[str] = []
    i = len(regex) - 1
    if _escaped(regex, i):
        return ""
    i -= 1
    while i >= 0:
        c = regex[i]
        if _escaped(regex, i):
            if c not in _ESCAPED:
                break
            tail.append(c)
            i -= 2
        elif c in _PLAIN:
            tail.append(c)
            i -= 1
        else:
            break
    return _key_extension("".join(reversed(tail)))


def _escaped(text: str, i: int) -> bool:
    """Whether ``text[i]`` follows an odd number of backslashes."""
    count = 0
    while i - count - 1 >= 0 and text[i - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def glob_extension(pattern: str) -> str:
    """``"*.php"`` -> ``".php"``: the literal extension a glob ends in."""
    cut = max(pattern.rfind(c) for c in "*?]\\")
    return _key_extension(pattern[cut + 1 :])
