"""Start server processes and stop every one of them, by PID, on exit.

Each process runs in its own session so a Ctrl-C in the terminal reaches
only the driver, which then stops the servers in reverse start order:
``SIGTERM`` to the recorded PID (nginx, perlbal and gunicorn masters all
stop their workers on it), then ``SIGKILL`` to that PID and to every
descendant recorded while it ran. The PIDs are also written to
``benchmarks/.work/pids`` so ``benchmarks/run``'s ``trap`` can finish the
job if the driver itself is killed.

Example::

    procs = Procs(workdir)
    nginx = procs.start("storage", ["nginx", "-p", str(d), "-c", "nginx.conf"])
    wait_for_port(port)
    ...
    procs.stop_all()
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """Return *count* distinct loopback ports that were free a moment ago.

    They are taken below the kernel's ephemeral range
    (``net.ipv4.ip_local_port_range``) and above 1024, so the thousands of
    outgoing connections a run makes cannot grab a listener's port before
    it binds. The probe sockets are closed again, so a port nobody then
    starts on is a *dead* port: a connect to it is refused at once.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(max(1025, low - 12000), low))
    random.shuffle(candidates)
    found: list[int] = []
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("no free loopback ports below the ephemeral range")


def wait_for_port(
    port: int, proc: Proc | None = None, *, timeout: float = 20.0
) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:*port*.

    :param proc: the process meant to listen there; if it exits first, fail
        at once with the end of its log instead of waiting for the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc is not None and proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace")[-2000:]
                raise TimeoutError(
                    f"{proc.name} exited with {proc.popen.returncode}:\n{tail}"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def children(pid: int) -> list[int]:
    """Direct children of *pid*, read from ``/proc/PID/task/*/children``."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def descendants(pid: int) -> list[int]:
    """Every descendant of *pid*, parents before children."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def rss_kib(pid: int) -> int:
    """``VmRSS`` of *pid* in KiB from ``/proc/PID/status`` (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of *pid* so far (0 if gone), ``/proc/PID/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the parenthesised command name; utime and stime are the
    # 14th and 15th fields of the whole line (proc(5)).
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class Proc:
    """One started server: its name, its Popen and the PIDs seen below it."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    seen: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[int]:
        """The master and its current descendants (workers); remembered."""
        pids = [self.pid, *descendants(self.pid)]
        self.seen.update(pids)
        return pids


class Procs:
    """The set of processes this benchmark started.

    :param workdir: scratch directory; logs go to ``workdir/logs/NAME.log``
        and the PID list to ``workdir/pids``.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        (workdir / "logs").mkdir(parents=True, exist_ok=True)

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None
    ) -> Proc:
        """Start *argv* with stdout/stderr to ``logs/NAME.log``."""
        path = self.workdir / "logs" / f"{name}.log"
        log = path.open("wb")  # one run's log only
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                # Not the repository root: "python -m gunicorn" puts its cwd
                # first on sys.path, which would shadow a PYTHONPATH tree.
                cwd=self.workdir,
                start_new_session=True,
            )
        finally:
            log.close()
        proc = Proc(name, popen, path)
        self.procs.append(proc)
        self._write_pids()
        return proc

    def _write_pids(self) -> None:
        pids = sorted({p for proc in self.procs for p in (proc.pid, *proc.seen)})
        (self.workdir / "pids").write_text("".join(f"{p}\n" for p in pids))

    def remember_workers(self) -> None:
        """Record every current descendant so ``stop_all`` can reach it."""
        for proc in self.procs:
            proc.tree()
        self._write_pids()

    def stop_all(self, *, grace: float = 5.0) -> None:
        """Stop every started process by PID, newest first."""
        self.remember_workers()
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait()
        # Workers whose master died first: kill them by their recorded PID,
        # but only if they still belong to this session (PID not reused).
        for proc in self.procs:
            for pid in proc.seen - {proc.pid}:
                with contextlib.suppress(OSError):
                    if os.getsid(pid) == proc.pid:
                        os.kill(pid, signal.SIGKILL)
        self.procs.clear()
        with contextlib.suppress(OSError):
            (self.workdir / "pids").unlink()
