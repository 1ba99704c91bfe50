"""medconv header: the full native header of a file (or of the first file of a DICOM series)."""
from __future__ import annotations

import click

from . import options


@click.command("header")
@options.inputs
@options.from_list
@options.json_out
@options.get
@options.series
@click.option("--all", "all_files", is_flag=True,
              help="DICOM series: list the elements whose values differ across its files.")
@click.option("--bulk", is_flag=True,
              help="With --json: include bulk data (pixel, waveform, overlay data; binary values over 768 bytes) "
                   "as InlineBinary. Without it they keep only their \"vr\".")
@options.keep_going
@options.quiet
def command(paths, from_list, as_json, get_fields, series, all_files, bulk, keep_going):
    """Print the full native header: every DICOM element (file meta, nested
    sequences, private tags), every NIfTI/Analyze field and extension,
    MetaImage/NRRD keys, MINC attributes, MGH fields, raster metadata.

    --json gives the DICOM JSON model (PS3.18 F.2) for DICOM and a field -> value
    object otherwise. --get takes a field name (pixdim, ElementSpacing), a DICOM
    keyword (PatientID), a tag (0010,0020 or 00100020) or a path into sequences
    (ReferencedStudySequence[0].ReferencedSOPInstanceUID). Pixel data is never decoded.
    Without --bulk, DICOM JSON omits bulk data of any size (pixel, waveform, overlay
    data...) and binary values over 768 bytes: only their "vr" is kept.

    An element that cannot be parsed (e.g. a broken private sequence) is shown as
    <unreadable: ERROR> with a warning, and the rest of the header as usual.

    \b
    Examples:
      medconv header ct.dcm
      medconv header scan.nii.gz --get pixdim --get descrip
      medconv header ct.dcm --get PatientID --get 0008,0060
      medconv header dicom_dir/ --series 3 --all
      medconv header mr.dcm --json | jq '."00100010"'
    """

    from .. import batch
    from .. import header as hdr
    from ..errors import UsageError
    from . import render

    paths = options.read_path_list(paths, from_list)
    if not paths:
        raise UsageError("no input given (medconv header PATH...)")
    if bulk and not as_json:
        raise UsageError("--bulk goes with --json")

    headers, failures = hdr.load_many(paths, series=series, keep_going=keep_going)
    _show(headers, as_json, get_fields, all_files, bulk, len(paths) > 1, hdr, render)
    batch.finish(failures, len(paths))


def _show(headers, as_json, get_fields, all_files, bulk, many, hdr, render) -> None:
    import sys

    from ..errors import UsageError

    if all_files:
        for h in headers:
            if not h.is_dicom:
                raise UsageError("--all compares the files of a DICOM series; this is not DICOM", h.path)
        tables = [{"path": h.path, "files": len(h.files), "differences": hdr.differences(h)} for h in headers]
        if as_json:
            render.print_json(tables, many)
            return
        for t in tables:
            if many:
                sys.stdout.write(f"# {render.safe(t['path'])}\n")
            _print_differences(t, render)
        return

    if get_fields:
        _print_get(headers, get_fields, hdr, render)
        return
    if as_json:
        render.print_json([hdr.to_json(h, bulk) for h in headers], many)
        return
    for h in headers:
        if many:
            sys.stdout.write(f"# {render.safe(h.path)} ({h.fmt})\n")
        _print_header(h, hdr, render)


def _print_get(headers, get_fields, hdr, render) -> None:
    """--get: a field some inputs lack prints empty for them; a field no input has is an input error
    (exit 3, naming the field) raised before anything is printed."""
    import sys

    from ..errors import InputError

    rows, missing = [], {}
    for h in headers:
        row = []
        for f in get_fields:
            try:
                row.append(render.format_get(hdr.lookup(h, f)))
            except InputError as exc:
                if not exc.message.startswith("no header field"):
                    raise
                missing.setdefault(f, []).append(exc)
                row.append("")
        rows.append(row)
    for f in get_fields:
        errors = missing.get(f, [])
        if headers and len(errors) == len(headers):
            if len(headers) == 1:
                raise errors[0]
            raise InputError(f"no header field {f!r} in any of the {len(headers)} inputs")
    for row in rows:
        sys.stdout.write("\t".join(row) + "\n")


def _print_header(h, hdr, render) -> None:
    import sys

    terminal = render.stdout_is_terminal()
    if h.is_dicom:
        rows = hdr.dicom_lines(h.data, terminal=terminal)
        if terminal:
            _rich_dicom(rows, render)
            return
        for depth, tag, vr, name, value in rows:
            indent = "  " * depth
            name, value = render.safe(name), render.safe(value)
            if tag == "#":
                sys.stdout.write(f"# {name}\n")
            elif tag == ">":
                sys.stdout.write(f"{indent[:-2]}> {name}\n")
            else:
                shown = value if vr == "SQ" or value.startswith("<") and value.endswith(">") else f"[{value}]"
                sys.stdout.write(f"{indent}{tag} {vr:<2} {name}  {shown}\n".rstrip() + "\n")
        return
    rows = hdr.dict_lines(hdr.text_fields(h))
    if terminal:
        _rich_fields(rows, render)
        return
    width = max((len(name) + 2 * depth for depth, name, _ in rows), default=0)
    for depth, name, value in rows:
        label = "  " * depth + render.safe(name)
        sys.stdout.write(f"{label:<{width}}  {render.safe(value)}".rstrip() + "\n")


def _console(render):
    from rich.console import Console

    return Console(no_color=not render.colour_allowed(), highlight=False, soft_wrap=True, markup=False, emoji=False)


def _rich_dicom(rows, render) -> None:
    from rich.text import Text

    console = _console(render)
    for depth, tag, vr, name, value in rows:
        indent = "  " * depth
        name, value = render.safe(name), render.safe(value)
        if tag == "#":
            console.print(Text(f"# {name}", style="bold"))
        elif tag == ">":
            console.print(Text(f"{indent[:-2]}> {name}", style="dim"))
        else:
            line = Text(indent)
            line.append(tag, style="cyan")
            line.append(f" {vr:<2} ", style="magenta")
            line.append(name, style="bold")
            line.append("  ")
            line.append(value if vr == "SQ" or value.startswith("<") else f"[{value}]",
                        style="dim" if value.startswith(("<", "(")) else "")
            console.print(line)


def _rich_fields(rows, render) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for depth, name, value in rows:
        table.add_row("  " * depth + render.safe(name), render.safe(value))
    _console(render).print(table)


def _print_differences(t, render) -> None:
    import sys

    rows = t["differences"]
    if not rows:
        sys.stdout.write(f"all {t['files']} files share every element value\n")
        return
    cols = ["tag", "name", "distinct", "values"]
    table = [[r["tag"], render.safe(r["name"]), f"{r['distinct']}",
              " | ".join(render.safe(v) for v in r["values"]) + (" ..." if r["distinct"] > len(r["values"]) else "")]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(cols)]
    sys.stdout.write(f"{t['files']} files; elements that differ:\n")
    sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip() + "\n")
    for row in table:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
