"""Run ``python -m wsgi_reproxy`` (serve, demo) as a real process in a test.

:class:`Command` starts the process in its own session, so its process group
holds everything it starts (gunicorn's arbiter and workers); it waits for a
line telling the port, and on exit signals the process and checks through
``/proc`` that nothing of that group is left -- the "Ctrl-C stops everything"
promise.  Output goes to files, not pipes, so a chatty server can never block
on a full pipe.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pytest

#: gunicorn's "Listening at: http://127.0.0.1:PORT (PID)" line.
GUNICORN_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def gunicorn_quiet_options() -> list[str]:
    """Options that keep a test's gunicorn from touching ``$HOME``.

    gunicorn 27 opens a control socket in ``~/.gunicorn`` by default.
    """
    from gunicorn.config import Config

    if "control_socket_disable" in Config().settings:
        return ["--no-control-socket"]
    return []


def process_group_members(pgid: int) -> list[str]:
    """``"pid (state) cmdline"`` for each live process in group *pgid*."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited while we looked
        # Fields after the command name, which is in parentheses and may
        # contain blanks: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            args = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name} ({fields[0]}) {args}")
    return found


class Command:
    """``python -m wsgi_reproxy ARGS`` in its own process group.

    :param args: the command-line arguments after ``-m wsgi_reproxy``.
    :param workdir: where logs are written (a test's ``tmp_path``).
    :param ready: a regex whose first group is the port, searched in the
        output (stdout and stderr) until it appears.
    :param cwd: the working directory of the process.
    :param env: extra environment variables.
    """

    def __init__(
        self,
        args: Sequence[str],
        workdir: Path,
        *,
        ready: re.Pattern[str] = GUNICORN_LISTENING,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.args = [sys.executable, "-m", "wsgi_reproxy", *args]
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self.ready = ready
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_status: int | None = None

    def output(self) -> str:
        """Everything the process wrote so far, stdout then stderr."""
        return self.stdout() + self.stderr()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def __enter__(self) -> Command:
        with (
            open(self.stdout_path, "wb") as out,
            open(self.stderr_path, "wb") as err,
        ):
            self.proc = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop(signal.SIGKILL, check=False)
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            match = self.ready.search(self.output())
            if match:
                self.port = int(match.group(1))
                return
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.args} exited with {self.proc.returncode} before it "
                    f"was ready:\n{self.output()}"
                )
            time.sleep(0.05)
        pytest.fail(f"{self.args} not ready after {self.timeout}s:\n{self.output()}")

    def stop(
        self,
        sig: signal.Signals = signal.SIGTERM,
        *,
        group: bool = False,
        check: bool = True,
    ) -> int:
        """Send *sig* (to the whole group with ``group=True``, like Ctrl-C in
        a terminal), wait for the process, and check that no member of its
        process group is left.  Idempotent; returns the exit status.
        """
        proc = self.proc
        if proc is None:
            assert self.exit_status is not None
            return self.exit_status
        self.proc = None
        if proc.poll() is None:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        try:
            self.exit_status = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            self.exit_status = proc.wait()
            if check:
                pytest.fail(f"{self.args} ignored {sig.name}:\n{self.output()}")
        left = self._wait_group_empty(proc.pid)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
            if check:
                pytest.fail(f"processes left behind after {sig.name}: {left}")
        return self.exit_status

    @staticmethod
    def _wait_group_empty(pgid: int, timeout: float = 5.0) -> list[str]:
        # Workers may take a moment to exit after the arbiter returned.
        deadline = time.monotonic() + timeout
        while True:
            left = process_group_members(pgid)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(check=exc is None)
