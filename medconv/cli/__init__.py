"""The medconv command: a click group whose commands are imported when invoked.

One handler turns every MedconvError into `medconv: error: ...` and its exit code;
`--debug` (or MEDCONV_DEBUG=1) shows the traceback instead.
"""
from __future__ import annotations

import os
import sys

import click

from .. import __version__

COMMANDS = {
    "info": ("medconv.cli.info", "Summarise images: shape, spacing, orientation, dtype (one row per DICOM series)."),
    "header": ("medconv.cli.header", "Print the full native header (DICOM elements, NIfTI fields, ...)."),
    "convert": ("medconv.cli.convert", "Convert between formats (DICOM, NIfTI, MetaImage, NRRD, MINC, MGH, PNG...)."),
    "stats": ("medconv.cli.stats", "Statistics of real voxel values, with masks, labels and 4D."),
    "anonymize": ("medconv.cli.anonymize", "De-identify DICOM (PS3.15 basic profile) and scrub other headers."),
    "diff": ("medconv.cli.diff", "Compare two images or folders: geometry, values, dtype (exit 1 if they differ)."),
    "view": ("medconv.cli.view", "Orthogonal slices or a montage as PNG, in the terminal, or a QC page."),
    "formats": ("medconv.cli.formats", "List the formats medconv reads and writes."),
}


class LazyGroup(click.Group):
    """Commands are imported only when run (or when their help is needed)."""

    def list_commands(self, ctx):
        return [name for name, (module, _) in COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx, name):
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        import importlib

        module = importlib.import_module(COMMANDS[name][0])
        return module.command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _debug_enabled(argv=None) -> bool:
    """MEDCONV_DEBUG=1, or `--debug` among the group's own flags (before the command name: after it,
    `--debug` is an unknown option of the command, a usage error like any other)."""
    if os.environ.get("MEDCONV_DEBUG", "") not in ("", "0"):
        return True
    for arg in (sys.argv[1:] if argv is None else argv):
        arg = str(arg)
        if arg == "--debug":
            return True
        if arg == "--" or not arg.startswith("-"):
            return False  # the command name (the group's flags take no values)
    return False


def _traceback() -> None:
    """--debug: the traceback on stderr; the error line and the exit code follow as usual."""
    import traceback

    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()


def _usage_message(exc) -> str:
    """A click usage error as one line, pointing at the command's help (no separate Usage: line)."""
    message = exc.format_message().replace("\n", " ")
    ctx = getattr(exc, "ctx", None)
    if getattr(exc, "option_name", None) == "--debug" and ctx is not None and ctx.parent is not None:
        return f"{message} (--debug goes before the command: medconv --debug {ctx.info_name} ...)"
    if isinstance(exc, click.UsageError) and ctx is not None:
        return f"{message} (see {ctx.command_path} --help)"
    return message


def _set_quiet(ctx, param, value):
    if value:
        from .. import log

        log.set_quiet(True)
    return value


def _set_allow_external(ctx, param, value):
    if value:
        from .. import untrusted

        untrusted.allow_external()  # through the environment: batch workers see it too
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             invoke_without_command=True, no_args_is_help=False)
@click.version_option(__version__, "-V", "--version", prog_name="medconv", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors (also MEDCONV_DEBUG=1).")
@click.option("-q", "--quiet", is_flag=True, callback=_set_quiet, expose_value=False, is_eager=True,
              help="Silence warnings and notes on stderr.")
@click.option("--allow-external-data", is_flag=True, callback=_set_allow_external, expose_value=False,
              is_eager=True, help="Let headers read data files outside their own folder (absolute paths, '..', "
                                  "symbolic links, HDF5 external storage); also MEDCONV_ALLOW_EXTERNAL_DATA=1. "
                                  "Unsafe on files from others.")
@click.pass_context
def cli(ctx, debug):
    """Convert and inspect medical image files.

    \b
    Examples:
      medconv info scan.nii.gz
      medconv convert dicom_dir/ scan.nii.gz
      medconv stats ct.nii.gz --mask liver.nii.gz
      medconv header image.dcm --get PatientID
    """
    if ctx.invoked_subcommand is None:  # `medconv` alone: the help, as --help prints it
        click.echo(ctx.get_help())


#: longest error line (a value quoted from an input is cut where it is made; this bounds the rest)
MAX_ERROR = 2000


def _error(message: str) -> None:
    from ..untrusted import escape

    message = escape(message)
    if len(message) > MAX_ERROR:
        message = message[:MAX_ERROR] + "..."
    click.echo(f"medconv: error: {message}", err=True)


def _exit(code: int) -> None:
    """sys.exit, except after Ctrl-C while helper threads are still alive (a threaded gzip writer cut
    off mid-block can leave its workers waiting forever, and Python waits for them at exit): outputs
    are already cleaned up by then, so the process ends at once."""
    import threading

    from ..errors import ExitStatus

    if code == ExitStatus.INTERRUPTED:
        from ..signals import exit_status, stopped_by

        if stopped_by:  # SIGTERM/SIGHUP: the shell's convention, 128 + the signal
            code = exit_status(stopped_by[0])
    if code >= 128 and any(t.is_alive() and not t.daemon for t in threading.enumerate()
                           if t is not threading.main_thread()):
        from .. import fileio

        fileio.remove_live_temps()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(int(code))
    sys.exit(int(code))


def main(argv=None) -> None:
    """Entry point of the console script and of `python -m medconv`: the one place where an outcome
    becomes an exit status (ExitStatus; each MedconvError carries its own)."""
    import warnings

    from ..errors import ExitStatus, MedconvError

    debug = _debug_enabled(argv)
    try:
        with warnings.catch_warnings():
            if not debug and not sys.warnoptions:
                # Library warnings (numpy on a corrupt header's matrix, Pillow on bad EXIF, pydicom on
                # odd values) are not medconv's messages: stderr keeps one line per problem (--debug
                # shows them).
                warnings.simplefilter("ignore")
            rv = cli.main(args=argv, prog_name="medconv", standalone_mode=False)
        if isinstance(rv, int) and rv:  # ctx.exit(code) returns the code when not standalone
            _exit(rv)
    except MedconvError as exc:
        if not exc.silent:
            if debug:
                _traceback()
            _error(str(exc).replace("\n", " "))
        _exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        _exit(exc.exit_code)
    except click.exceptions.Abort:
        _error("interrupted")
        _exit(ExitStatus.INTERRUPTED)
    except click.ClickException as exc:
        if debug:
            _traceback()
        _error(_usage_message(exc))
        _exit(exc.exit_code if isinstance(exc, click.UsageError) else ExitStatus.USAGE)
    except KeyboardInterrupt:
        _error("interrupted")
        _exit(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        try:
            sys.stdout = None
        finally:
            os._exit(ExitStatus.OK)
    except Exception as exc:  # a bug: still one line, and a code no other failure uses
        if debug:
            _traceback()
        _error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        _exit(ExitStatus.INTERNAL)
    _exit(ExitStatus.OK)
