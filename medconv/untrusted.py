"""What an input file may make medconv do: the files a header may reference, and values shown safely.

One rule for every reader: a header may name data only inside its own folder (or below it), by
a relative name without `..`, and not through a symbolic link whose target leaves that folder;
HDF5 external storage, external links and virtual datasets pointing at other files are refused
the same way. `--allow-external-data` (or MEDCONV_ALLOW_EXTERNAL_DATA=1) lifts the rule.
Numbered patterns and LISTs are bounded (count, name length) before any name is made.
"""
from __future__ import annotations

import os
import re

from .errors import CorruptInput, InputError

ENV = "MEDCONV_ALLOW_EXTERNAL_DATA"
#: most data files one header may name (a LIST or a numbered pattern)
MAX_FILES = 1 << 16
#: longest data file name (or pattern) a header may give
MAX_NAME = 1024
#: longest piece of an input's text shown inside a message
MAX_SHOWN = 80
#: most HDF5 objects walked when looking for references to other files
MAX_HDF5_OBJECTS = 1 << 16

_HINT = "use --allow-external-data to read it anyway"


def external_allowed() -> bool:
    """True when --allow-external-data (or MEDCONV_ALLOW_EXTERNAL_DATA=1) is in force."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def allow_external(allowed: bool = True) -> None:
    """Lift (or restore) the rule for this process and the worker processes it starts."""
    if allowed:
        os.environ[ENV] = "1"
    else:
        os.environ.pop(ENV, None)


def shown(value, limit: int = MAX_SHOWN) -> str:
    """A value from an input as it may appear in a message: quoted, escaped, cut with `...`."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return "'" + escape(text).replace("'", "\\'") + "'"


def _refuse(header: str, what: str, name: str, why: str):
    return InputError(f"{what} {shown(name)} {why}; refused ({_HINT})", header)


def _inside(real: str, real_base: str) -> bool:
    return real == real_base or real.startswith(real_base.rstrip(os.sep) + os.sep)


def reference(header: str, name: str, what: str = "data file") -> str:
    """The path of the file `name` that the header at `header` references, once the rule allows it.

    Refused (InputError, exit 3, naming the reference): an absolute name, a `..` part, a name
    whose symbolic links lead out of the header's folder. Lifted by --allow-external-data.
    """
    base = os.path.dirname(header)
    if len(name) > MAX_NAME or "\x00" in name:
        raise CorruptInput(f"{what} name {shown(name)} is not a usable file name", header)
    full = os.path.join(base, name)
    if external_allowed():
        return full
    if not name.strip():
        raise CorruptInput(f"{what} name is empty", header)
    if os.path.isabs(name) or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        raise _refuse(header, what, name, "is an absolute path")
    if ".." in re.split(r"[/\\]", name):
        raise _refuse(header, what, name, "leaves the header's folder (..)")
    real_base = os.path.realpath(base or ".")
    if not _inside(os.path.realpath(full), real_base):
        raise _refuse(header, what, name, "is a symbolic link leading out of the header's folder")
    return full


def pattern_names(header: str, pattern: str, lo: int, hi: int, step: int, what: str = "data file",
                  resolve: bool = True) -> list:
    """The paths of the names a numbered pattern (`slice%03d.raw 1 40 1`) stands for, bounded before
    any is made; the bare names when not `resolve` (to show them, not to read them)."""
    if step == 0 or (hi - lo) * step < 0:
        raise CorruptInput(f"bad {what} pattern {shown(pattern)} (range {lo}..{hi} step {step})", header)
    count = (hi - lo) // step + 1
    if count > MAX_FILES:
        raise CorruptInput(f"{what} pattern {shown(pattern)} names {count} files (at most {MAX_FILES})", header)
    if len(pattern) > MAX_NAME:
        raise CorruptInput(f"{what} pattern {shown(pattern)} is longer than {MAX_NAME} characters", header)
    fields = re.findall(r"%(?:%|[-+ #0]*(\d*)(?:\.(\d*))?([a-zA-Z]))", pattern)
    numbers = [f for f in fields if f[2]]
    if len(numbers) != 1 or numbers[0][2] not in "diuxXo" \
            or any(int(n or 0) > 32 for n in numbers[0][:2]):
        raise CorruptInput(f"bad {what} pattern {shown(pattern)} (one %d with a width of at most 32)", header)
    if max(abs(lo), abs(hi)) >= 10 ** 18:
        raise CorruptInput(f"bad {what} pattern {shown(pattern)} (numbers too large)", header)
    try:
        names = [pattern.replace("%u", "%d") % i for i in range(lo, hi + (1 if step > 0 else -1), step)]
    except (TypeError, ValueError):
        raise CorruptInput(f"bad {what} pattern {shown(pattern)}", header) from None
    return [reference(header, n, what) for n in names] if resolve else names


def list_names(header: str, lines, what: str = "data file") -> list:
    """The paths of the names a LIST gives, one a line, bounded in count and length as they come."""
    out = []
    for line in lines:
        name = line.strip()
        if not name:
            continue
        if len(out) >= MAX_FILES:
            raise CorruptInput(f"the {what} LIST names more than {MAX_FILES} files", header)
        out.append(reference(header, name, what))
    return out


def check_hdf5(fh, header: str) -> None:
    """Refuse an HDF5 file (an open h5py.File) whose objects read other files: external storage,
    external links, virtual datasets with sources elsewhere (unless --allow-external-data)."""
    if external_allowed():
        return
    import h5py

    seen, todo, count = set(), [fh], 0
    while todo:
        group = todo.pop()
        for name in group:
            count += 1
            if count > MAX_HDF5_OBJECTS:
                raise CorruptInput(f"HDF5 file holds more than {MAX_HDF5_OBJECTS} objects", header)
            link = group.get(name, getlink=True)
            where = f"{group.name.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                raise _refuse(header, "HDF5 object", where, f"is an external link to {shown(link.filename)}")
            if not isinstance(link, h5py.HardLink):
                continue  # a soft link names an object of this file, found through its hard link
            try:
                obj = group[name]
            except (KeyError, OSError, RuntimeError, ValueError):
                continue  # a damaged object: the reader reports it when it gets there
            try:
                key = h5py.h5o.get_info(obj.id).addr
            except Exception:  # an unreadable object header: nothing to follow
                continue
            if key in seen:
                continue
            seen.add(key)
            if isinstance(obj, h5py.Group):
                todo.append(obj)
            elif isinstance(obj, h5py.Dataset):
                external = obj.external
                if external:
                    raise _refuse(header, "HDF5 dataset", where,
                                  f"keeps its data in another file ({shown(_text(external[0][0]))})")
                if obj.is_virtual:
                    for source in obj.virtual_sources():
                        if source.file_name != ".":
                            raise _refuse(header, "HDF5 virtual dataset", where,
                                          f"reads another file ({shown(source.file_name)})")


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- showing values --------------------------------------------------------------------
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")
_CONTROL_NL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def _escaped(match) -> str:
    c = match.group()
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def escape(text: str, newlines: bool = True) -> str:
    """`text` with control and bidirectional-override characters written as \\x1b, \\u202e, ...

    Newlines and tabs stay when `newlines` is false (multi-line cells of a table)."""
    if not isinstance(text, str):
        text = str(text)
    pattern = _CONTROL_NL if newlines else _CONTROL
    return pattern.sub(_escaped, text) if pattern.search(text) else text
