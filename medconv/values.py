"""Header and statistics values as plain data: JSON-ready values and the bare text of --get.

Shared by the library (header dumps, diff reports) and the command line's renderings.
"""
from __future__ import annotations

import math


def safe(value) -> str:
    """A value from an input as printed text: control and bidirectional characters escaped (\\x1b,
    \\u202e, ...), so nothing printed can drive a terminal. Every text rendering goes through it."""
    from .untrusted import escape

    return escape(value if isinstance(value, str) else str(value))


def jsonable(value):
    """Plain Python values for json (numpy scalars and arrays, tuples, bytes, NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def format_scalar(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value)) if not math.copysign(1, value) < 0 or value != 0 else "0"
        return format(value, ".10g")
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return format_scalar(value.item())
    return safe(value)


def flatten(value):
    if isinstance(value, dict):
        out = []
        for v in value.values():
            out.extend(flatten(v))
        return out
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and hasattr(value, "__len__")):
        out = []
        for v in (value.tolist() if hasattr(value, "tolist") else value):
            out.extend(flatten(v))
        return out
    return [value]


def format_get(value) -> str:
    """A --get value: scalars bare, lists space-separated (nested lists flattened)."""
    if isinstance(value, (list, tuple, dict)) or (hasattr(value, "tolist") and hasattr(value, "__len__")):
        return " ".join(format_scalar(v) for v in flatten(value))
    return format_scalar(value)
