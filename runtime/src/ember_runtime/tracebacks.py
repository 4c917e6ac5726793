"""A user's traceback without the runtime's frames.

Shown in logs when a handler raises and in load errors, so the user reads
their own code's frames first. A module of its own because both the logger
(``context.logger.exception``) and the contract need it, and the logger sits
below the contract.
"""

from __future__ import annotations

import os

_PKG_DIR = os.path.dirname(os.path.realpath(__file__)) + os.sep


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the runtime's own frames."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.realpath(f.filename).startswith(_PKG_DIR)
    ]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)
