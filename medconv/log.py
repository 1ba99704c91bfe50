"""Messages on stderr: warnings and notes, silenced by --quiet. Data never goes here."""
from __future__ import annotations

import sys

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def warn(message: str, path: str | None = None) -> None:
    """A warning the user should see (silenced by --quiet)."""
    if not _state["quiet"]:
        from .untrusted import escape

        where = f"{path}: " if path else ""
        print(escape(f"medconv: warning: {where}{message}"), file=sys.stderr)


def note(message: str) -> None:
    """An informative line on stderr (silenced by --quiet)."""
    if not _state["quiet"]:
        from .untrusted import escape

        print(escape(f"medconv: {message}"), file=sys.stderr)
