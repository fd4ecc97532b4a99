"""A trigger nothing may act on: the answer, and a warning that is not a flood.

SPEC §4.12: when the app asks for an offload the config does not allow
(reproxying off, no root, no matching prefix), the client never gets the
app's empty body dressed as the file.  It gets a 502 (a 404 for a refused
file) and the log says, at most once a minute per cause, which directive is
missing::

    warnings = RateLimitedWarnings(logger)
    warnings.warn("x-sendfile:off", "X-Sendfile ignored: ReproxySendfile is Off")
    start_response(*bad_gateway(environ))
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: Seconds between two warnings with the same key.
WARNING_INTERVAL = 60.0


class RateLimitedWarnings:
    """WARNING lines, at most one per *interval* seconds for each key.

    A misconfigured URL fails on every request; one line a minute, with the
    count of the ones left out, says so without filling the disk.

    :param log: where the lines go.
    :param interval: seconds between two lines with the same key.
    :param clock: a monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        log: logging.Logger,
        *,
        interval: float = WARNING_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        # key -> (time of the last line, lines left out since)
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, key: str, message: str, *args: object) -> bool:
        """Log *message* % *args* unless *key* was logged within the interval.

        :return: whether the line was written.
        """
        now = self.clock()
        with self._lock:
            last, skipped = self._last.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._last[key] = (last, skipped + 1)
                return False
            if len(self._last) > 1024:  # keys are config causes; stay bounded
                self._last.clear()
            self._last[key] = (now, 0)
        if skipped:
            message += " (%d more like this in the last %.0fs)"
            args += (skipped, self.interval)
        self.log.warning(message, *args)
        return True


def bad_gateway(
    environ: Mapping[str, Any],
) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """``502`` with a short text body naming nothing internal (none for HEAD)."""
    body = b"502 Bad Gateway\n\nThe requested file could not be served.\n"
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ]
    head = environ.get("REQUEST_METHOD") == "HEAD"
    return "502 Bad Gateway", headers, [] if head else [body]
