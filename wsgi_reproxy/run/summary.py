"""The one line ``serve`` prints at startup: what it will do, in effect.

::

    wsgi-reproxy: reproxy.conf: 3 sections, 1 virtual host, AllowReproxy On in 2;
    file roots: /srv/files; allow-list: http://10.0.0.*:7500/; worker class:
    gthread; capacity: 2 workers x 8 threads = 16 concurrent downloads

(one line in the output; wrapped here).  Read from the parsed config (every
context: server level, virtual hosts, sections) and gunicorn's effective
settings, after ``gunicorn.conf.py`` and ``$GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..config.settings import Overrides
from ..resolve.resolver import Config


def _contexts(config: Config) -> Iterator[Overrides]:
    parsed = config.parsed
    yield parsed.overrides
    for section in parsed.sections:
        yield section.overrides
    for vhost in parsed.vhosts:
        yield vhost.overrides
        for section in vhost.sections:
            yield section.overrides


def _values(config: Config, field: str) -> list[str]:
    """Every value of the tuple-valued *field*, in config order, once each."""
    seen: dict[str, None] = {}
    for overrides in _contexts(config):
        for name, value in overrides.values:
            if name == field and isinstance(value, tuple):
                seen.update(dict.fromkeys(str(v) for v in value))
    return list(seen)


def capacity(cfg: Any) -> str:
    """Concurrent requests gunicorn's settings allow, with the arithmetic."""
    worker_class = str(cfg.worker_class_str)
    workers = int(cfg.workers)
    kind = worker_class.lower()
    if "gevent" in kind or "eventlet" in kind or "tornado" in kind:
        per, unit = int(cfg.worker_connections), "connections"
    elif "gthread" in kind or (kind == "sync" and int(cfg.threads) > 1):
        per, unit = int(cfg.threads), "threads"
    else:
        per, unit = 1, "thread"
    return f"{workers} workers x {per} {unit} = {workers * per} concurrent downloads"


def summary_line(config: Config, conf_path: str, cfg: Any) -> str:
    """The startup line: sections, roots, allow-list, worker class, capacity."""
    parsed = config.parsed
    sections = len(parsed.sections) + sum(len(v.sections) for v in parsed.vhosts)
    allowing = sum(
        1
        for overrides in _contexts(config)
        for name, value in overrides.values
        if name == "allow_reproxy" and value is True
    )
    roots = _values(config, "file_roots")
    allow = _values(config, "allow_targets")
    worker_class = str(cfg.worker_class_str)
    if worker_class == "sync" and int(cfg.threads) > 1:
        worker_class = "gthread"  # what gunicorn turns sync + threads into
    return (
        f"wsgi-reproxy: {conf_path}: {sections} sections, "
        f"{len(parsed.vhosts)} virtual hosts, AllowReproxy On in {allowing}; "
        f"file roots: {' '.join(roots) or 'none'}; "
        f"allow-list: {' '.join(allow) or 'any http/https URL'}; "
        f"worker class: {worker_class}; capacity: {capacity(cfg)}"
    )
