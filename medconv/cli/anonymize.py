"""medconv anonymize: de-identify DICOM (PS3.15 basic profile) and scrub other headers."""
from __future__ import annotations

import click

from . import options


@click.command("anonymize")
@options.inputs
@options.from_list
@click.option("-o", "--output", "output", type=click.Path(), metavar="DIR", help="Write anonymised files into DIR.")
@click.option("--in-place", is_flag=True, help="Replace each input atomically (temp file + rename).")
@click.option("--layout", type=click.Choice(["structured", "mirror"]), default="structured", show_default=True,
              help="structured: DICOM as DIR/<patient>/<study>/<series>/<n>.dcm, other files with keyed "
              "pseudonyms of their folder and file names; mirror: the input's relative paths and names.")
@click.option("--key", metavar="SECRET", help="Key of the keyed pseudonyms (else env MEDCONV_ANON_KEY, else random).")
@click.option("--patient-id", metavar="VALUE", help="Use VALUE as PatientID and PatientName instead of a pseudonym.")
@click.option("--keep-dates", is_flag=True, help="Retain longitudinal full dates.")
@click.option("--shift-dates", type=int, metavar="DAYS", default=None, help="Shift every date by DAYS (times kept).")
@click.option("--keep-uids", is_flag=True, help="Retain UIDs.")
@click.option("--keep-descriptors", is_flag=True, help="Retain descriptions and comments (review them yourself).")
@click.option("--keep-private", is_flag=True, help="Keep private elements (with a warning: they are not vetted).")
@click.option("--keep-device", is_flag=True, help="Retain device identity (serial numbers, station names).")
@click.option("--keep-patient-characteristics", is_flag=True, help="Retain age, sex, size and weight.")
@click.option("--exclude-burned-in", is_flag=True, help="Skip images with BurnedInAnnotation YES.")
@click.option("--mapping", type=click.Path(), metavar="FILE", help="Write the original-to-pseudonym table (mode 0600).")
@click.option("--check", is_flag=True, help="Only report identifying data left in PATH...; exit 1 if any. "
              "Judged with the --keep-* / --shift-dates / --patient-id options given with it.")
@click.option("--strict", is_flag=True, help="With --check: free text listed for review counts as a finding (exit 1).")
@click.option("--keep-unscrubbable", is_flag=True, help="Copy DICOM objects whose content cannot be de-identified "
              "(encapsulated PDF/CDA/3D models, raw data) with a warning, instead of leaving them out.")
@options.keep_going
@click.option("-n", "--dry-run", is_flag=True,
              help="List what the profile does to each element of the first DICOM file; write nothing.")
@options.jobs
@options.json_out
@options.force
@options.quiet
def command(paths, from_list, output, in_place, layout, key, patient_id, keep_dates, shift_dates, keep_uids,
            keep_descriptors, keep_private, keep_device, keep_patient_characteristics, exclude_burned_in, mapping,
            check, strict, keep_unscrubbable, keep_going, dry_run, jobs, as_json, force):
    """De-identify DICOM files and trees; scrub the headers of every other format.

    DICOM: PS3.15 Annex E basic profile at every sequence depth, private and overlay
    elements removed, UIDs replaced by keyed 2.25 UIDs (the same --key gives the same
    UIDs in every run, so studies, series and references stay intact).

    \b
    Examples:
      medconv anonymize export/ -o anon/ --key "$SECRET" --mapping map.json
      medconv anonymize export/ -o anon/ --shift-dates -365
      medconv anonymize --check anon/
      medconv anonymize scan.dcm --dry-run      # what happens to each element

    NIfTI/Analyze/MetaImage/NRRD/MINC/MGH headers, PNG/JPEG/TIFF metadata and JSON
    sidecars are scrubbed with voxels and geometry untouched.
    """
    from ..errors import UsageError

    paths = options.read_path_list(paths, from_list)
    if not paths:
        raise UsageError("no input given (medconv anonymize PATH... -o DIR)")
    if keep_dates and shift_dates is not None:
        raise UsageError("--keep-dates and --shift-dates exclude each other")
    if strict and not check:
        raise UsageError("--strict goes with --check (it counts the free text listed for review)")
    if patient_id is not None and not patient_id.strip():
        raise UsageError("--patient-id must not be empty")
    from ..anonymize.actions import Options

    opts = Options(keep_dates=keep_dates, shift_days=shift_dates, keep_uids=keep_uids,
                   keep_descriptors=keep_descriptors, keep_private=keep_private, keep_device=keep_device,
                   keep_patient_characteristics=keep_patient_characteristics, patient_id=patient_id,
                   keep_unscrubbable=keep_unscrubbable)
    if check:  # judged with the options given here, never with what the files claim was done
        return _check(paths, as_json, [patient_id] if patient_id else [], opts.letters(), strict)
    if in_place == bool(output) and not dry_run:
        raise UsageError("give exactly one of -o DIR and --in-place")
    from ..anonymize import Runner, check_mapping_path, finish

    runner = Runner(opts, key=key, output=output, in_place=in_place, layout=layout, force=force,
                    exclude_burned_in=exclude_burned_in, keep_going=keep_going)
    if dry_run:
        return _dry_run(runner, paths, as_json)
    if mapping:
        check_mapping_path(mapping, paths, output, in_place, force)
    try:
        runner.run(paths, jobs=jobs)
    except BaseException:
        if mapping and runner.summary.done and runner.pseudo.mapping:
            # stopped part-way: the pseudonyms of the files already written are kept
            from ..anonymize.pseudonym import write_mapping

            write_mapping(mapping, runner.pseudo.mapping, force=force)
        raise
    finish(runner, mapping)


def _dry_run(runner, paths, as_json):
    import json

    from ..anonymize import classify, walk_inputs
    from ..anonymize.plan import plan_file, render
    from ..errors import InputError

    files = [f for _, _, f in walk_inputs(paths)]
    first = next((f for f in files if classify(f) == "dicom"), None)
    if first is None:
        raise InputError("no DICOM file among the inputs (--dry-run shows the plan for one DICOM file)",
                         paths[0])
    rows = plan_file(first, runner)
    if as_json:
        click.echo(json.dumps({"path": first, "elements": rows}, indent=2))
    else:
        from .render import safe

        click.echo(f"# {safe(first)}: nothing written")
        click.echo("\n".join(safe(line) for line in render(rows).split("\n")))


def _check(paths, as_json, patient_ids=(), letters=frozenset(), strict=False):
    import json

    from .. import log
    from ..anonymize.check import check

    findings = check(paths, patient_ids, letters)
    review = [f for f in findings if f.get("review")]
    if as_json:
        click.echo(json.dumps(findings, indent=2))
    else:
        from .render import safe

        for f in findings:
            click.echo(safe(f"{f['path']}: {f['where']}: {'review: ' if f.get('review') else ''}{f['what']}"))
    if review and not strict:
        log.note(f"{len(review)} free-text value(s) listed under \"review\": read them; not counted "
                 "(--strict counts them)")
    if len(findings) > (0 if strict else len(review)):
        from ..errors import CheckFailed

        raise CheckFailed(f"{len(findings)} finding(s) of identifying data")
