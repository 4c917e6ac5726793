"""Finding ``module:function``, loudly.

Each load fault has a stable code (see ``errors``) and the message lists
what was found, because a pod in CrashLoopBackOff with "handler not found"
and nothing else costs users an afternoon.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader
from types import FunctionType, ModuleType

from ember_runtime.contract import Handler
from ember_runtime.errors import LoadError, LoadFault
from ember_runtime.tracebacks import user_traceback


class Target:
    __slots__ = ("function", "module")

    def __init__(self, module: str, function: str) -> None:
        self.module = module
        self.function = function


def parse_target(spec: str) -> Target:
    module, sep, function = spec.strip().partition(":")
    if not sep or not module or not function or not function.isidentifier():
        raise LoadError(
            LoadFault.INVALID_TARGET,
            f"target {spec!r} is not of the form 'module:function' (for example 'main:handle')",
        )
    if not all(part.isidentifier() for part in module.split(".")):
        raise LoadError(LoadFault.INVALID_TARGET, f"target module {module!r} is not a module name")
    return Target(module, function)


def _py_files(directory: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(".py"))
    except OSError:
        return []


def _import_source(source: str, target: Target) -> ModuleType:
    directory = os.path.dirname(os.path.abspath(source))
    filename = os.path.basename(source)
    if not os.path.isfile(source):
        found = _py_files(directory)
        raise LoadError(
            LoadFault.SOURCE_NOT_FOUND,
            f"source file {source!r} does not exist. Found in {directory!r}: "
            f"{', '.join(found) or 'no Python files'}",
        )
    name = filename[:-3] if filename.endswith(".py") else filename.partition(".")[0]
    if target.module != name:
        raise LoadError(
            LoadFault.INVALID_TARGET,
            f"target module {target.module!r} does not match source file {filename!r}; "
            f"use '{name}:{target.function}'",
        )
    # Sibling files in the source directory import as they would locally.
    sys.path.insert(0, directory)
    path = os.path.abspath(source)
    loader = SourceFileLoader(name, path)
    spec = ModuleSpec(name, loader, origin=path)
    spec.has_location = True
    module = ModuleType(name)
    module.__spec__ = spec
    module.__loader__ = loader
    module.__file__ = path
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(target: Target) -> ModuleType:
    try:
        return importlib.import_module(target.module)
    except ModuleNotFoundError as exc:
        if exc.name and target.module.startswith(exc.name):
            cwd = os.getcwd()
            here = [n[:-3] for n in _py_files(cwd)]
            raise LoadError(
                LoadFault.MODULE_NOT_FOUND,
                f"no module named {target.module!r} on the Python path. "
                f"Modules in {cwd!r}: {', '.join(here) or 'none'}",
            ) from None
        raise


def load_target(spec: str, source: str | None = None) -> Handler:
    """Import the user's module and return its handler, or raise ``LoadError``."""
    target = parse_target(spec)
    origin = source or target.module
    # Function sources live on read-only mounts (a ConfigMap): never try to
    # write .pyc files next to them. Only the user's import is affected; the
    # runtime's own modules keep their compiled bytecode.
    writes_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        module = _import_source(source, target) if source else _import_module(target)
    except LoadError:
        raise
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else origin
        raise LoadError(LoadFault.SYNTAX_ERROR, f"syntax error in {where}: {exc.msg}") from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise LoadError(
            LoadFault.IMPORT_ERROR,
            f"importing {origin!r} raised {type(exc).__name__}: {exc}\n{user_traceback(exc)}",
        ) from None
    finally:
        sys.dont_write_bytecode = writes_bytecode
    fn = getattr(module, target.function, None)
    if fn is None or not callable(fn):
        found = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, FunctionType)
            and not name.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
        )
        what = "a function" if fn is None else f"a callable, not {type(fn).__name__},"
        raise LoadError(
            LoadFault.HANDLER_NOT_FOUND,
            f"{str(source) if source else 'module ' + repr(target.module)} is expected to contain "
            f"{what} named {target.function!r}. Found: {', '.join(found) or 'no functions'}",
        )
    return fn  # type: ignore[no-any-return]


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect


def is_async_handler(fn: Handler) -> bool:
    """True for ``async def`` functions and objects with an ``async def __call__``."""
    for candidate in (fn, getattr(type(fn), "__call__", None)):  # noqa: B004
        code = getattr(getattr(candidate, "__func__", candidate), "__code__", None)
        if code is not None and code.co_flags & _CO_COROUTINE:
            return True
    return False
