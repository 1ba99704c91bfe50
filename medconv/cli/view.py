"""medconv view: orthogonal slices or a montage as PNG, in the terminal, or a QC page of many inputs."""
from __future__ import annotations

import os
import sys

import click

from . import options


@click.command("view")
@options.inputs
@options.from_list
@click.option("-o", "--output", "output", type=click.Path(), metavar="FILE|DIR",
              help="Write a PNG (one input), or one PNG per input and index.html into DIR (several inputs, "
                   "or a path ending in /).")
@click.option("--at", "at", metavar="X,Y,Z", help="Cross the panels at this world point (mm, RAS).")
@click.option("--voxel", "voxel", metavar="I,J,K", help="Cross the panels at this voxel (0-based stored indices).")
@click.option("--window", "window", default="auto", show_default=True, metavar="auto|C,W",
              help="Display window: the file's VOI window or the 0.5-99.5 percentiles, or CENTER,WIDTH in real units.")
@click.option("--cmap", default="gray", show_default=True, metavar="NAME",
              help="Colour map: gray, gray_r, hot, viridis, bone.")
@click.option("--volume", "volume_index", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Which volume of a 4D image (0-based).")
@click.option("--overlay", type=click.Path(), metavar="LABELMAP",
              help="Draw this label map (same grid) over the image, one colour per label, with a legend.")
@click.option("--label-names", "names_path", type=click.Path(), metavar="FILE",
              help="Names for the overlay's labels (ITK-SNAP label description or FreeSurferColorLUT-style table).")
@click.option("--neurological", is_flag=True,
              help="Patient's left on the left of axial and coronal panels (default: radiological, right on the left).")
@click.option("--montage", type=click.IntRange(min=1), metavar="N", help="A lightbox of N evenly spaced slices.")
@click.option("--axis", type=click.Choice(["axial", "coronal", "sagittal"]), default="axial", show_default=True,
              help="Slice direction of --montage.")
@click.option("--size", "panel_px", type=click.IntRange(min=32, max=4096), default=256, show_default=True,
              metavar="PX", help="Longest side of each panel in pixels.")
@options.series
@options.force
@options.jobs
@options.keep_going
@options.quiet
def command(paths, from_list, output, at, voxel, window, cmap, volume_index, overlay, names_path, neurological,
            montage, axis, panel_px, series, force, jobs, keep_going):
    """Draw an image: three orthogonal slices (or a montage) labelled with orientation letters.

    The panels cross the centre of the volume (or --at X,Y,Z world mm, or --voxel I,J,K);
    each panel is labelled with the orientation letters of its sides (R/L, A/P, S/I) in
    the radiological convention (patient's right on the left) or --neurological. Slices
    follow the stored voxel axes nearest to the world axes (no resampling).

    With -o FILE.png: a PNG. Without -o on a terminal: the picture in the terminal,
    sized to its width (COLUMNS): Unicode half blocks in 24-bit colour, or the kitty or
    iTerm2 image protocol when the terminal announces it. Without -o and not on a
    terminal: a usage error (nothing binary is written to a pipe).

    Several inputs (or -o DIR/): one PNG per input in DIR and DIR/index.html, a
    self-contained QC page (thumbnails embedded, each beside its shape, spacing,
    orientation, dtype and warnings, in input order) that opens from disk in any browser.

    \b
    Examples:
      medconv view brain.nii.gz                       # in the terminal
      medconv view ct.nii.gz -o ct.png --window 40,400
      medconv view t1.nii.gz --overlay aseg.nii.gz --label-names FreeSurferColorLUT.txt -o seg.png
      medconv view bold.nii.gz --volume 10 --montage 16 --axis axial -o bold.png
      medconv view sub-*/anat/*.nii.gz -o qc/ -j 4   # then open qc/index.html
    """
    from .. import view as viewlib
    from ..errors import UsageError

    paths = options.read_path_list(paths, from_list)
    if not paths:
        raise UsageError("no input given (medconv view PATH...)")
    if at and voxel:
        raise UsageError("--at and --voxel cannot be combined")
    if montage is not None and (at or voxel):
        raise UsageError("--montage draws evenly spaced slices: --at/--voxel do not apply")
    if names_path and not overlay:
        raise UsageError("--label-names needs --overlay")
    draw = {
        "at": viewlib.parse_triplet(at, "--at") if at else None,
        "voxel": viewlib.parse_triplet(voxel, "--voxel", integer=True) if voxel else None,
        "window": viewlib.parse_window(window), "cmap": cmap, "t": volume_index, "neurological": neurological,
        "montage": montage, "axis": axis, "panel_px": panel_px,
    }
    viewlib.cmap_table(cmap)  # an unknown name is a usage error before anything is read
    many = len(paths) > 1 or (output is not None and (output.endswith(("/", os.sep)) or os.path.isdir(output)))
    if many:
        if output is None:
            raise UsageError("several inputs need -o DIR (one PNG each and an index.html)")
        viewlib.write_qc(paths, output, overlay=overlay, label_names_path=names_path, series=series, force=force,
                    jobs=jobs, keep_going=keep_going, **draw)
        return
    path = paths[0]
    if output is None and not sys.stdout.isatty():
        raise UsageError("stdout is not a terminal: give -o FILE.png (or run on a terminal to see the picture)")
    picture = viewlib.view(path, overlay=overlay, label_names_path=names_path, series=series,
                           title=None if output else os.path.basename(path.rstrip("/")), **draw)
    if output is None:
        import shutil

        size = shutil.get_terminal_size()  # COLUMNS/LINES when set, else the terminal's own size
        protocol = viewlib.terminal_protocol()
        sys.stdout.write(viewlib.terminal_text(picture.image, size.columns, size.lines, protocol))
        sys.stdout.flush()
        return
    viewlib.write_png(picture.image, output, force=force, protect=[path] + ([overlay] if overlay else []))
