"""Which local path ``X-Reproxy-File`` may serve, and opening it safely.

A path is served only when, with every symlink resolved, it lies strictly
below a ``ReproxyFileRoot`` of the request.  It is then opened one
component at a time below a descriptor of that root, every directory with
``O_DIRECTORY | O_NOFOLLOW`` and the file with ``O_NOFOLLOW``, so a
directory on the path swapped for a symlink since the check (issue 11:
``renameat2(RENAME_EXCHANGE)`` in a loop) makes the open fail instead of
leaving the root; the descriptor is checked again with ``fstat``::

    resolved = resolve_file(value, settings.file_roots)
    if not isinstance(resolved, Refusal):
        opened = open_file(resolved, settings.file_roots)
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


def open_file(
    path: str, roots: Sequence[str] = ()
) -> tuple[Any, os.stat_result] | Refusal:
    """Open *path*, a result of :func:`resolve_file`, for reading.

    With *roots* (the same ``ReproxyFileRoot`` list), *path* is opened below
    the root that contains it, one component at a time relative to the
    root's descriptor (``openat``), never following a symlink: there is no
    window between the check and the open.  Without *roots* it is opened by
    name, following symlinks in every component but the last (the caller
    vouches for the path).  Either way only a regular file is returned.

    :return: the file object (binary, unbuffered reads come from it) and its
        ``fstat``, or a :class:`Refusal`.
    """
    # O_NOFOLLOW: the last component must not be a symlink; O_NONBLOCK: a
    # FIFO swapped in since resolve_file cannot block the worker (it has no
    # effect on regular files).
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        if roots and os.open in os.supports_dir_fd:
            fd = _open_below(path, roots, flags)
            if isinstance(fd, Refusal):
                return fd
        else:
            fd = os.open(path, flags)
    except OSError as exc:
        return Refusal(f"cannot open: {exc.strerror}")
    file = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        file.close()
        return Refusal("not a regular file")
    return file, st


def _open_below(path: str, roots: Sequence[str], flags: int) -> int | Refusal:
    """Open *path* relative to the first root below which it lies.

    :raise OSError: when a component is missing, not a directory, or a
        symlink (``ELOOP``) -- the path changed since it was resolved.
    """
    for root in roots:
        try:
            real_root = Path(root).resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        real = Path(path)
        if real == real_root or not real.is_relative_to(real_root):
            continue
        *dirs, name = real.relative_to(real_root).parts
        # The root itself is the administrator's path: symlinks in it are
        # followed (a "current" release link); nothing below it is.
        dir_fd = os.open(real_root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in dirs:
                below = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd
                )
                os.close(dir_fd)
                dir_fd = below
            return os.open(name, flags, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    return Refusal("outside every ReproxyFileRoot")
