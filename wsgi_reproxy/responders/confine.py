"""Which local path ``X-Reproxy-File`` may serve, and opening it safely.

A path is served only when, with every symlink resolved, it lies strictly
below a ``ReproxyFileRoot`` of the request; it is then opened without
following a last-component symlink and checked again on the descriptor::

    resolved = resolve_file(value, settings.file_roots)
    if not isinstance(resolved, Refusal):
        opened = open_file(resolved)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an ``X-Reproxy-File`` path is not served (for the log only)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


def resolve_file(path: str, roots: Sequence[str]) -> str | Refusal:
    """Resolve *path* and return it if it may be served, else a :class:`Refusal`.

    Every symlink in *path* and in each root is resolved first, so neither
    ``..`` nor a symlink can lead outside a root; the comparison is by path
    components (:meth:`~pathlib.PurePath.is_relative_to`), never by string
    prefix, so ``/srv/files-private`` is not below ``/srv/files``.  Only a
    regular file strictly below a root is accepted.  Roots are resolved on
    every call (a few ``lstat`` calls) so that switching a ``current``
    symlink during a deploy takes effect at once.

    :param path: the ``X-Reproxy-File`` value; must be absolute.
    :param roots: ``ReproxyFileRoot`` directories; empty refuses everything.
    """
    if not roots:
        return Refusal("no ReproxyFileRoot configured")
    if not path or any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return Refusal("empty path or control character in path")
    if not os.path.isabs(path):
        return Refusal("not an absolute path")
    if path.endswith("/"):
        # pathlib drops a trailing slash; the kernel would say ENOTDIR.
        return Refusal("not a regular file")
    try:
        real = Path(path).resolve(strict=True)
        mode = real.stat().st_mode
    except FileNotFoundError:
        return Refusal("no such file")
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop (< 3.13)
        return Refusal(f"cannot resolve: {exc}")
    if not stat.S_ISREG(mode):
        return Refusal("not a regular file")
    for root in roots:
        try:
            real_root = Path(root).resolve(strict=True)
        except (OSError, RuntimeError):
            continue  # a missing root contains nothing
        if real != real_root and real.is_relative_to(real_root):
            return str(real)
    return Refusal("outside every ReproxyFileRoot")


def open_file(path: str) -> tuple[Any, os.stat_result] | Refusal:
    # O_NOFOLLOW: the resolved path's last component must still not be a
    # symlink; O_NONBLOCK: a FIFO swapped in since resolve_file cannot block
    # the worker (it has no effect on regular files).
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return Refusal(f"cannot open: {exc.strerror}")
    file = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        file.close()
        return Refusal("not a regular file")
    return file, st
