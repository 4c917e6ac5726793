"""Inline source checked at apply time, before any pod starts.

A syntax error or a missing handler would otherwise show only as a crash
loop, and not at all for a Function at ``scale.min: 0`` until its first
call. ``ast`` answers both without running the user's code. The check is
conservative: it reports a missing handler only when every top-level name
is visible (no ``from x import *``, no writes through ``globals()``); the
runtime's own load error (read from the pods) covers the rest.
"""

from __future__ import annotations

import ast

from ember_operator.status import (
    REASON_HANDLER_NOT_FOUND,
    REASON_SOURCE_SYNTAX_ERROR,
    SpecError,
)

SOURCE_MODULE = "main"  # inline source is saved as main.py (render.names.SOURCE_KEY)


def _top_level_names(body: list[ast.stmt]) -> tuple[set[str], bool]:
    """Names bound at module level (also inside top-level if/try/with
    blocks), and whether the list may be incomplete."""
    names: set[str] = set()
    opaque = False
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    opaque = True
                else:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
                    elif isinstance(sub, ast.Call) and _rebinds_names(sub):
                        opaque = True  # globals()[...] = ...
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            blocks = [node.body, getattr(node, "orelse", [])]
            if isinstance(node, ast.Try):
                blocks += [h.body for h in node.handlers] + [node.finalbody]
            for block in blocks:
                more, hidden = _top_level_names(block)
                names |= more
                opaque |= hidden
        elif isinstance(node, ast.Expr) and _rebinds_names(node):
            opaque = True  # globals().update(...), exec(...)
    return names, opaque


_NAME_WRITERS = frozenset({"globals", "exec", "setattr", "vars", "locals", "__import__"})


def _rebinds_names(node: ast.AST) -> bool:
    return any(
        isinstance(sub, ast.Call)
        and isinstance(sub.func, ast.Name)
        and sub.func.id in _NAME_WRITERS
        for sub in ast.walk(node)
    )


def check_source(source: str, handler: str) -> SpecError | None:
    """A ``SpecError`` (not retried: only a new spec fixes it) when the
    runtime would surely fail to load ``handler`` from ``source``."""
    module, _, function = handler.partition(":")
    if module != SOURCE_MODULE:
        return SpecError(
            REASON_HANDLER_NOT_FOUND,
            f"handler {handler!r}: inline source is module {SOURCE_MODULE!r},"
            f" use '{SOURCE_MODULE}:{function}'",
            retry=False,
        )
    try:
        tree = ast.parse(source, filename=f"{SOURCE_MODULE}.py")
    except SyntaxError as e:
        where = f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")
        text = (e.text or "").strip()
        return SpecError(
            REASON_SOURCE_SYNTAX_ERROR,
            f"{SOURCE_MODULE}.py, {where}: {e.msg}" + (f": {text[:200]}" if text else ""),
            retry=False,
        )
    except ValueError as e:  # null bytes
        return SpecError(REASON_SOURCE_SYNTAX_ERROR, f"{SOURCE_MODULE}.py: {e}", retry=False)
    names, opaque = _top_level_names(tree.body)
    if function in names or opaque:
        return None
    functions = sorted(
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not n.name.startswith("_")
    )
    return SpecError(
        REASON_HANDLER_NOT_FOUND,
        f"{SOURCE_MODULE}.py defines no top-level {function!r}."
        f" Found: {', '.join(functions) or 'no functions'}",
        retry=False,
    )
