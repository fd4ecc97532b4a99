"""Apache httpd 2.4 configuration syntax: text to logical lines and words.

This module knows the syntax only, not the meaning of any directive:

* a line ending in a single ``\\`` continues on the next line (httpd's
  ``ap_cfg_getline``: ``\\\\`` at the end is not a continuation);
* ``#`` starts a comment only as the first non-blank character of a logical
  line, so a continued comment swallows the next physical line, as in httpd;
* ``${NAME}`` is substituted in the whole line before it is split into words
  (httpd resolves variables per line, not per token);
* words split on blanks; a word starting with ``"`` or ``'`` runs to the
  matching quote, inside which ``\\"`` (or ``\\'``) and ``\\\\`` are escapes
  (httpd's ``ap_getword_conf``); an unterminated quote runs to the end of the
  line, as in httpd.

Example::

    >>> [(l.lineno, l.text) for l in logical_lines("A 1 \\\\\\n  2\\n# c\\n", "x")]
    [(1, 'A 1   2')]
    >>> split_words('PreserveHeaders "Content-Type" \\'X-A\\\\\\'b\\'')
    ['PreserveHeaders', 'Content-Type', "X-A'b"]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_BLANKS = " \t\r\n\f\v"
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_.:-]*)\}")


@dataclass(frozen=True, slots=True)
class Line:
    """One logical line: continuations joined, outer blanks stripped."""

    text: str
    filename: str
    lineno: int  # the first physical line of the logical line


def logical_lines(text: str, filename: str) -> Iterator[Line]:
    """Yield the non-blank, non-comment logical lines of *text*."""
    pending: list[str] = []
    start = 0
    for number, physical in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if physical.endswith("\\") and not physical.endswith("\\\\"):
            pending.append(physical[:-1])
            continue
        pending.append(physical)
        line = "".join(pending).strip(_BLANKS)
        pending = []
        if line and not line.startswith("#"):
            yield Line(line, filename, start)
    if pending:  # a continuation on the last line of the file
        line = "".join(pending).strip(_BLANKS)
        if line and not line.startswith("#"):
            yield Line(line, filename, start)


def substitute(text: str, lookup: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """Replace every ``${NAME}`` that *lookup* knows.

    :return: the new text and the names *lookup* did not know; those stay
        as written, which is what httpd does (with a warning).
    """
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None:
            missing.append(match.group(1))
            return match.group(0)
        return value

    if "${" not in text:
        return text, missing
    return _VARIABLE.sub(replace, text), missing


def split_words(text: str) -> list[str]:
    """Split an argument string into words, httpd's ``ap_getword_conf`` way."""
    words: list[str] = []
    i, end = 0, len(text)
    while True:
        while i < end and text[i] in _BLANKS:
            i += 1
        if i >= end:
            return words
        quote = text[i]
        if quote in "\"'":
            i += 1
            chars: list[str] = []
            while i < end and text[i] != quote:
                if text[i] == "\\" and i + 1 < end and text[i + 1] in (quote, "\\"):
                    i += 1
                chars.append(text[i])
                i += 1
            i += 1  # the closing quote (or past the end)
            words.append("".join(chars))
        else:
            start = i
            while i < end and text[i] not in _BLANKS:
                i += 1
            words.append(text[start:i])
