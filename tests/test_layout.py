"""The package's layout: data flows one way through its stages, and the
public API is exactly what ``wsgi_reproxy.__all__`` names.

Run alone with ``python -m pytest tests/test_layout.py``; README
"Development" has the map this checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsgi_reproxy

PACKAGE = Path(wsgi_reproxy.__file__).parent

#: The stages, lowest first: a module may import its own stage or a lower one.
STAGES = (
    "exceptions",
    # Every stage logs: the wsgi.errors fallback and request ids sit below them.
    "logs",
    "config",
    "resolve",
    "fetch",
    "responders",
    "middleware",
    "django",
    "flask",
    # The prometheus extra's public module (wsgi_reproxy.prometheus): the
    # PrometheusMetrics an app passes as metrics=, which run/ serves.
    "prometheus",
    "run",
    "__init__",
    "__main__",
)


def stage_of(module: str) -> int:
    """``"wsgi_reproxy.fetch.body"`` -> the index of ``fetch`` in STAGES."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return STAGES.index(top)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 2:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every in-package module *path* imports, with its line, type-only ones too."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("wsgi_reproxy"):
                continue
            if node.module is None or target.count(".") == 0:
                # "from . import demo" / "from .run import cli": name the modules
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name)
                for a in node.names
                if a.name.startswith("wsgi_reproxy.")
            ]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize(
    "path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES]
)
def test_no_module_imports_a_higher_stage(path: Path) -> None:
    here = module_name(path)
    upward = [
        f"{path.relative_to(PACKAGE)}:{line}: {here} imports {target}"
        for line, target in imports_of(path)
        if target.count(".") and stage_of(target) > stage_of(here)
    ]
    assert upward == []


def test_stage_check_sees_an_upward_import(tmp_path: Path) -> None:
    # The walk itself must find what it is looking for.
    config = PACKAGE / "config" / "settings.py"
    assert stage_of(module_name(config)) < stage_of("wsgi_reproxy.fetch.body")
    assert (1, "wsgi_reproxy.fetch.body") in [
        (line, target)
        for line, target in imports_of_text("from ..fetch.body import X\n", config)
    ]


def imports_of_text(text: str, as_path: Path) -> list[tuple[int, str]]:
    fake = as_path.parent / "_probe_.py"
    fake.write_text(text)
    try:
        return imports_of(fake)
    finally:
        fake.unlink()


def test_every_stage_folder_says_what_it_takes_and_gives() -> None:
    for stage in (*STAGES[2:6], "run"):
        doc = ast.get_docstring(
            ast.parse((PACKAGE / stage / "__init__.py").read_text())
        )
        assert doc, f"{stage}/__init__.py has no docstring"


def test_public_api_is_exactly_all() -> None:
    assert wsgi_reproxy.__all__ == sorted(wsgi_reproxy.__all__)
    assert wsgi_reproxy.__all__ == [
        "Config",
        "ConfigError",
        "ReproxyCache",
        "ReproxyError",
        "ReproxyMiddleware",
        "Settings",
        "TruncatedBodyError",
        "UpstreamError",
        "can_reproxy",
        "load_config",
        "parse_config",
    ]
    for name in wsgi_reproxy.__all__:
        assert getattr(wsgi_reproxy, name) is not None
