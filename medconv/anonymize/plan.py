"""anonymize --dry-run: what the profile does to each element of one file, nothing written.

The plan is the difference between the file as read and the same data set after the
reference (pydicom) path has anonymised it in memory, so it shows what a real run writes.
Original values are never printed; new values are (they are the anonymised ones).
"""
from __future__ import annotations

from . import profile
from .actions import lookup
from .check import empty_value


def _name(elem) -> str:
    tag = int(elem.tag)
    return elem.keyword or elem.name if not elem.tag.is_private else f"private ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _tag(elem) -> str:
    tag = int(elem.tag)
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _short(value, limit: int = 48) -> str:
    text = "\\".join(str(v) for v in value) if isinstance(value, (list, tuple)) or type(value).__name__ == \
        "MultiValue" else (f"<{len(value)} bytes>" if isinstance(value, bytes) else str(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def plan_dataset(before, after, letters: set, prefix: str = "", rows: list | None = None) -> list:
    """Rows {tag, name, vr, action, result, new} for every element of `before` (and those added)."""
    rows = [] if rows is None else rows
    for elem in before:
        tag = int(elem.tag)
        if elem.tag.is_private:
            action = "private"
        else:
            action = "X" if lookup(tag) == "X" else (profile.effective_action(tag, letters)
                                                     or ("-" if profile.known_public(tag) else "unknown"))
        row = {"tag": prefix + _tag(elem), "name": _name(elem), "vr": elem.VR, "action": action}
        if elem.tag not in after:
            rows.append({**row, "result": "removed", "new": ""})
            continue
        new = after[elem.tag]
        if elem.VR == "SQ":
            items, kept = elem.value or [], new.value or []
            result = "emptied" if items and not kept else f"{len(kept)} item(s) cleaned"
            rows.append({**row, "result": result, "new": ""})
            for i, (a, b) in enumerate(zip(items, kept)):
                plan_dataset(a, b, letters, f"{prefix}{_tag(elem)}[{i}].", rows)
            continue
        if new.value == elem.value:
            result, shown = "kept", ""
        elif empty_value(new.value):
            result, shown = "emptied", ""
        else:
            result, shown = "replaced", _short(new.value)
        rows.append({**row, "result": result, "new": shown})
    for elem in after:
        if elem.tag not in before:
            rows.append({"tag": prefix + _tag(elem), "name": _name(elem), "vr": elem.VR, "action": "-",
                         "result": "added", "new": "" if elem.VR == "SQ" else _short(elem.value)})
    return rows


def plan_file(path: str, runner) -> list:
    """The rows for one DICOM file, as `runner`'s options would anonymise it."""
    import copy
    import warnings

    from ..errors import CorruptInput, MedconvError
    from . import check_complete, check_truncated

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ..dicom import guards as dcm_guards
            ds = dcm_guards.dcmread(path, path, force=True)
            check_truncated(ds, path)  # what a real run refuses, the plan refuses too
            check_complete(ds, path)
            before = copy.deepcopy(ds)
            runner.anon.anonymize(ds)
            rows = []
            meta_before = getattr(before, "file_meta", None)
            if meta_before is not None:
                plan_dataset(meta_before, ds.file_meta, runner.anon.letters, "", rows)
            plan_dataset(before, ds, runner.anon.letters, "", rows)
    except MedconvError:
        raise
    except Exception as exc:  # any parse failure of this one file is reported, not raised as a crash
        raise CorruptInput(f"cannot read as DICOM ({type(exc).__name__})", path) from None
    return rows


def render(rows: list) -> str:
    header = ("tag", "name", "VR", "profile", "result", "new value")
    table = [header] + [(r["tag"], r["name"], r["vr"], r["action"], r["result"], r["new"]) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    lines = []
    for row in table:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths)) + "  " + str(row[-1]))
    return "\n".join(line.rstrip() for line in lines)
