"""Typos of our directive names: ``AlowReproxy On`` would be ignored silently.

Every directive this project does not know is ignored (SPEC §3), so a
misspelt ``AllowReproxy`` leaves reproxying off without a word.  An ignored
name one edit away from one of ours (a letter added, dropped, changed, or
two neighbours swapped) gets a warning for ``check``::

    did_you_mean([Directive("AlowReproxy", ("On",), "site.conf", 3)])
    # ['site.conf:3: AlowReproxy is not a directive wsgi_reproxy knows, so it
    #   is ignored: did you mean AllowReproxy?']
"""

from __future__ import annotations

from collections.abc import Iterable

from .directives import DIRECTIVES
from .records import Directive

#: How SPEC §3 spells our directives; a registered name missing here is
#: suggested as registered (lower case).
SPELLING = {
    name.lower(): name
    for name in (
        "AllowReproxy",
        "PreserveHeaders",
        "ReproxyAllowTargets",
        "ReproxyTimeout",
        "ReproxyMaxRedirects",
        "ReproxyForwardHeaders",
        "ReproxyFileRoot",
        "ReproxyKeepAppHeaders",
        "ReproxyLogQuery",
        "ReproxyHeadMethod",
        "ReproxyMaxUrlLength",
        "ReproxySendfile",
        "XSendFile",
        "XSendFilePath",
        "ReproxyAccelRedirect",
    )
}


def one_edit_apart(a: str, b: str) -> bool:
    """``True`` when *a* becomes *b* by exactly one insertion, deletion,
    substitution or swap of two neighbouring characters."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


def did_you_mean(ignored: Iterable[Directive]) -> list[str]:
    """Warnings for the ignored directives that look like one of ours."""
    ours = [SPELLING.get(key, key) for key in DIRECTIVES]
    found = []
    for directive in ignored:
        if directive.name.startswith("<"):
            continue  # a section tag, never one of our directives
        key = directive.name.lower()
        close = [name for name in ours if one_edit_apart(key, name.lower())]
        if close:
            found.append(
                f"{directive.where}: {directive.name} is not a directive "
                f"wsgi_reproxy knows, so it is ignored: did you mean "
                f"{' or '.join(close)}?"
            )
    return found
