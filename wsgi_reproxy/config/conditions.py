"""Config variables and conditional sections, applied while reading.

``Define NAME [VALUE]`` and ``UnDefine NAME`` change the names that
``${NAME}`` (falling back to the environment) and ``<IfDefine [!]NAME>``
see; ``<IfModule [!]NAME>`` asks which modules are loaded, and mod_reproxy
always is::

    conditions = Conditions({"PROD": ""}, modules=["ssl_module"])
    conditions.test("ifdefine", "!PROD")    # False
    conditions.test("ifmodule", "mod_ssl.c")  # True
    conditions.lookup("HOME")               # from os.environ
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

from ..exceptions import ConfigError
from .lexer import Line

#: ``<IfModule>`` names that are always loaded: we are mod_reproxy.
OUR_MODULES = frozenset({"mod_reproxy.c", "reproxy_module", "mod_reproxy"})


class Conditions:
    """The defined names and the loaded modules of one parse.

    :param defines: names defined as with ``httpd -D NAME`` (and values).
    :param modules: the modules ``<IfModule>`` sees as loaded; ``None``
        means every module is assumed loaded.
    """

    def __init__(
        self, defines: Mapping[str, str] | None, modules: Collection[str] | None
    ) -> None:
        self.defines: dict[str, str] = dict(defines or {})
        self.modules = None if modules is None else {module_key(m) for m in modules}

    def lookup(self, name: str) -> str | None:
        """The value of ``${name}``: a ``Define`` first, then the environment."""
        if name in self.defines:
            return self.defines[name]
        return os.environ.get(name)

    def test(self, key: str, arg: str) -> bool:
        """Whether ``<IfDefine arg>`` (*key* ``"ifdefine"``) or
        ``<IfModule arg>`` (*key* ``"ifmodule"``) holds."""
        negate = arg.startswith("!")
        name = arg[1:] if negate else arg
        if key == "ifdefine":
            result = name in self.defines
        elif module_key(name) in {module_key(m) for m in OUR_MODULES}:
            result = True
        else:
            result = self.modules is None or module_key(name) in self.modules
        return result != negate

    def define(self, args: list[str], line: Line) -> None:
        """Apply ``Define NAME [VALUE]``."""
        if not args or len(args) > 2 or ":" in args[0]:
            raise ConfigError(
                "Define takes one or two arguments, NAME [VALUE]",
                line.filename,
                line.lineno,
            )
        self.defines[args[0]] = args[1] if len(args) == 2 else ""

    def undefine(self, args: list[str], line: Line) -> None:
        """Apply ``UnDefine NAME``."""
        if len(args) != 1:
            raise ConfigError("UnDefine takes one argument", line.filename, line.lineno)
        self.defines.pop(args[0], None)


def module_key(name: str) -> str:
    """``mod_ssl.c``, ``ssl_module`` and ``mod_ssl`` all name one module."""
    name = name.strip()
    if name.endswith(".c"):
        name = name[:-2]
    if name.startswith("mod_"):
        return name[4:]
    if name.endswith("_module"):
        return name[: -len("_module")]
    return name
