"""Configuration and start-up of every system under test, loopback only.

Each anchor gets its best honest configuration (issue 7: "the anchors get
their best honest configuration too"):

- **storage**: nginx, ``sendfile on``, two workers, no access log;
- **backend**: the one app of :mod:`_bench.app` under gunicorn ``gthread``
  with keep-alive, so perlbal's ``persist_backend`` and nginx's upstream
  ``keepalive`` both reuse connections (a sync worker closes each one);
- **perlbal**: ``reverse_proxy`` + ``enable_reproxy``, keep-alive to client
  and backend, a 1 MiB ``buffer_size_reproxy_url`` (default 50k). Perlbal is
  a single-process event loop; it has no worker setting;
- **nginx**: ``X-Accel-Redirect`` to an ``internal`` location that
  ``proxy_pass``\\es to ``http://$upstream$path`` taken from the redirect,
  ``proxy_buffering on`` with 8 MiB of buffers per request and no temp file,
  keep-alive upstreams (``proxy_http_version 1.1``, ``Connection ""``),
  ``worker_processes 2`` like the two gunicorn workers;
- **wsgi_reproxy**: the same app wrapped in ``ReproxyMiddleware`` under
  gunicorn with 2 ``sync`` workers, and with 2 ``gthread`` workers of 8
  threads (16 threads = wrk's 16 connections).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .procs import Proc, Procs, free_ports, wait_for_port

BENCH_DIR = Path(__file__).resolve().parent.parent
WORKERS = 2
GTHREADS = 8

#: file name -> size in bytes, served by the storage node
FILES = {
    "1k": 1024,
    "1m": 1024**2,
    "100m": 100 * 1024**2,
    "1g": 1024**3,
}


@dataclass
class System:
    """One thing a client can download from."""

    key: str  # short id used in tables: direct, perlbal, nginx, wr_sync ...
    label: str  # human name for the report
    port: int
    proc: Proc  # the serving process whose tree we measure (RSS)
    path_prefix: str  # "" for the storage node, "/ok" for reproxies
    failover: bool = True  # has a "/failover/" path
    backend: Proc | None = None  # the app server behind it, if separate

    def pids(self) -> list[int]:
        """Every process serving this system's requests (CPU accounting)."""
        extra = self.backend.tree() if self.backend else []
        return self.proc.tree() + extra

    def url(self, name: str, *, failover: bool = False) -> str:
        prefix = "/failover" if failover else self.path_prefix
        return f"http://127.0.0.1:{self.port}{prefix}/{name}"


def make_files(storage: Path, sizes: dict[str, int]) -> None:
    """Write random files once; reuse them when the size already matches."""
    storage.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1024**2)
    for name, size in sizes.items():
        path = storage / name
        if path.exists() and path.stat().st_size == size:
            continue
        with path.open("wb") as out:
            if size < len(block):
                out.write(os.urandom(size))
            else:
                # Repeating a random MiB is enough: nothing on the path
                # compresses, and generation stays ~1 s per GiB.
                for _ in range(size // len(block)):
                    out.write(block)


def _user_line() -> str:
    # As root, nginx's workers would switch to "nobody" and lose access to
    # the scratch directory; keep them as the invoking user.
    return "user root root;" if os.geteuid() == 0 else ""


def _nginx_main(workdir: Path, name: str, workers: int, connections: int = 4096) -> str:
    d = workdir / name
    for sub in ("tmp", "logs"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    # nginx logs every refused connect of the failover test (~20 MB a run);
    # keep one run's worth.
    (d / "logs" / "error.log").unlink(missing_ok=True)
    return f"""
{_user_line()}
daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
worker_rlimit_nofile {2 * connections + 256};
events {{ worker_connections {connections}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    tcp_nodelay on;
"""


def _nginx_argv(conf: Path) -> list[str]:
    # -e: nginx opens its error log before reading the config; keep even
    # that first line out of /var/log.
    log = conf.parent / "logs" / "error.log"
    return ["nginx", "-p", str(conf.parent), "-e", str(log), "-c", str(conf)]


def start_storage(
    procs: Procs, workdir: Path, port: int, *, connections: int = 4096
) -> Proc:
    """nginx serving ``workdir/files`` with sendfile."""
    conf = (
        _nginx_main(workdir, "storage", WORKERS, connections)
        + f"""
    sendfile on;
    tcp_nopush on;
    open_file_cache max=100 inactive=600s;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {workdir}/files;
        location / {{ }}
    }}
}}
"""
    )
    path = workdir / "storage" / "nginx.conf"
    path.write_text(conf)
    proc = procs.start("storage", _nginx_argv(path))
    wait_for_port(port, proc)
    return proc


def _gunicorn(
    procs: Procs,
    name: str,
    target: str,
    port: int,
    worker: str,
    env: dict[str, str],
) -> Proc:
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--chdir",
        str(BENCH_DIR),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        worker,
        "--keep-alive",
        "30",
        "--timeout",
        "300",
        "--backlog",
        "4096",
        "--log-level",
        "warning",
    ]
    if worker == "gthread":
        argv += ["--threads", str(GTHREADS)]
    if worker == "gevent":
        # serve's default (issue 12): gevent with room for 10,000 downloads.
        argv += ["--worker-connections", "10000"]
    proc = procs.start(name, [*argv, target], env=env)
    wait_for_port(port, proc)
    return proc


def start_backend(procs: Procs, port: int, env: dict[str, str]) -> Proc:
    """The plain app for perlbal and nginx (gthread: keep-alive capable)."""
    return _gunicorn(procs, "backend", "_bench.app:app", port, "gthread", env)


def start_wsgi_reproxy(
    procs: Procs, name: str, port: int, worker: str, env: dict[str, str]
) -> Proc:
    """The app wrapped in wsgi_reproxy, under gunicorn *worker*."""
    target = "_bench.reproxy_app:application"
    return _gunicorn(procs, name, target, port, worker, env)


def start_perlbal(
    procs: Procs,
    workdir: Path,
    port: int,
    backend: int,
    *,
    name: str = "perlbal",
    tuned_buffers: bool = True,
) -> Proc:
    """perlbal as a reverse proxy with reproxying on.

    :param tuned_buffers: 1 MiB buffers for throughput; ``False`` keeps
        perlbal's defaults (the slow-client scenario measures those).
    """
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    buffers = (
        "  SET buffer_size             = 1m\n  SET buffer_size_reproxy_url = 1m\n"
        if tuned_buffers
        else ""
    )
    # Parameters: /usr/share/doc/perlbal/doc/service-parameters.txt.gz.
    conf = f"""
CREATE POOL backends
  POOL backends ADD 127.0.0.1:{backend}

CREATE SERVICE front
  SET listen                  = 127.0.0.1:{port}
  SET role                    = reverse_proxy
  SET pool                    = backends
  SET enable_reproxy          = true
  SET persist_client          = on
  SET persist_backend         = on
  SET verify_backend          = off
  SET backend_persist_cache   = 32
  SET connect_ahead           = 4
{buffers}  SET server_tokens           = off
ENABLE front
"""
    path = d / "perlbal.conf"
    path.write_text(conf)
    proc = procs.start(name, ["perlbal", f"--config={path}"])
    wait_for_port(port, proc)
    return proc


def start_nginx_front(
    procs: Procs, workdir: Path, port: int, backend: int, storage: int, dead: int
) -> Proc:
    """nginx in front of the app, following ``X-Accel-Redirect``."""
    conf = (
        _nginx_main(workdir, "nginx", WORKERS)
        + f"""
    upstream app {{ server 127.0.0.1:{backend}; keepalive 32; }}
    upstream storage {{ server 127.0.0.1:{storage}; keepalive 32; }}
    # max_fails=0: never mark the dead server down, so every request pays
    # the failover, as with perlbal and wsgi_reproxy's URL lists.
    upstream storage_failover {{
        server 127.0.0.1:{dead} max_fails=0;
        server 127.0.0.1:{storage} backup;
        keepalive 32;
    }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering on;
    proxy_buffer_size 64k;
    proxy_buffers 32 256k;
    proxy_busy_buffers_size 1m;
    proxy_max_temp_file_size 0;
    proxy_next_upstream error timeout;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://app;
        }}
        location ~ ^/_reproxy/(?<rp_host>[a-z_]+)(?<rp_path>/.*)$ {{
            internal;
            proxy_pass http://$rp_host$rp_path;
        }}
    }}
}}
"""
    )
    path = workdir / "nginx" / "nginx.conf"
    path.write_text(conf)
    proc = procs.start("nginx", _nginx_argv(path))
    wait_for_port(port, proc)
    return proc


#: For the slow-client scenario (_bench.slow).
nginx_main = _nginx_main
nginx_argv = _nginx_argv


def ports() -> dict[str, int]:
    """Fresh loopback ports for every listener, plus one dead port."""
    names = ("storage", "backend", "perlbal", "nginx", "wr_sync", "wr_gthread")
    names += ("wr_gevent", "dead")
    return dict(zip(names, free_ports(len(names)), strict=True))
