"""Options shared by several commands, each defined once: one flag name, one meaning."""
from __future__ import annotations

import click

from .. import log


def _quiet(ctx, param, value):
    if value:
        log.set_quiet(True)
    return value


quiet = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet,
                     help="Silence warnings and notes on stderr.")
json_out = click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document (an object for one input, a list for several).")
get = click.option("--get", "get_fields", multiple=True, metavar="FIELD",
                   help="Print only this field's bare value (repeatable; tab-separated, one input per line).")
force = click.option("-f", "--force", is_flag=True, help="Replace existing output files.")
inputs = click.argument("paths", nargs=-1, type=click.Path(), metavar="PATH...")
from_list = click.option("--from-list", "from_list", type=click.Path(allow_dash=True), metavar="FILE",
                         help="Read more input paths from FILE, one per line ('-' for stdin; blank lines and lines "
                              "starting with # are skipped).")
output_dir = click.option("-o", "--output", "output", type=click.Path(), metavar="DIR",
                          help="Write outputs into DIR (many inputs; NIfTI-1 .nii.gz unless --to says otherwise).")


def _complete_to(ctx, param, incomplete):
    from ..formats import TO_CHOICES

    return [c for c in TO_CHOICES if c.startswith(incomplete.lower().lstrip("."))]


to = click.option("--to", "to", metavar="FORMAT|EXT", shell_complete=_complete_to,
                  help="Output format: a format name with its default file (nifti1 and nifti2 .nii.gz, analyze "
                       ".hdr, metaimage .mha, minc .mnc, jpeg .jpg, tiff .tif, dicom: a series folder), or "
                       "exactly the file an extension names (nii, nii.gz, hdr, img, mhd, mha, nrrd, nhdr, mgh, mgz, "
                       "mnc, png, jpg, tif, bmp, dcm).")
series = click.option("--series", "series", metavar="NUMBER|UID",
                      help="Choose one DICOM series of a directory by series number or SeriesInstanceUID.")
jobs = click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
                    help="Parallel workers for many inputs (default: CPUs for a batch, 1 for one input).")
keep_going = click.option("-k", "--keep-going", is_flag=True,
                          help="Try every input; report failures at the end and exit 5 if any failed.")
skip_existing = click.option("--skip-existing", is_flag=True,
                             help="Skip inputs whose destination already exists (make-friendly reruns).")
update = click.option("-u", "--update", is_flag=True,
                      help="Convert only inputs newer than their destination (replacing it); skip the rest.")
dry_run = click.option("-n", "--dry-run", is_flag=True,
                       help="Print the planned SOURCE -> DESTINATION table on stdout and write nothing.")


def read_path_list(paths, from_list):
    """Arguments plus the paths listed in --from-list (blank lines and #comments skipped)."""
    out = list(paths)
    if from_list:
        from ..errors import InputError

        try:
            fh = click.open_file(from_list, "r")
            with fh:
                for line in fh:
                    line = line.rstrip("\r\n")
                    if line.strip() and not line.lstrip().startswith("#"):
                        out.append(line)
        except OSError as exc:
            raise InputError(f"cannot read the path list ({exc.strerror})", from_list) from None
    return out
