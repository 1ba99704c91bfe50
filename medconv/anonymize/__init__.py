"""medconv anonymize: de-identify DICOM trees and scrub other image headers.

`run()` walks the inputs, anonymises each DICOM file with the PS3.15 profile
(actions.py), scrubs the headers of every other image format (each format backend's `scrub`,
called by headers.py) and JSON sidecars (headers.py), skips everything else, and writes
atomically. `check.py` reports what identifying data remains.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from .. import fileio, log
from ..errors import CorruptInput, InputError, MedconvError, OutputError, UsageError
from ..formats import BY_NAME, DATA_EXTENSIONS, FILE_EXTENSIONS
from .actions import (
    ENCAPSULATED_DOCUMENT,
    MAX_NESTING,
    MEDIA_DIRECTORY_CLASS,
    Anonymizer,
    Options,
    burned_in_status,
    deep_stack,
    unscrubbable,
)
from .pseudonym import Pseudonymizer, write_mapping

SKIP_NAMES = {"DICOMDIR"}


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list = field(default_factory=list)
    unscrubbable: int = 0  # DICOM objects left out: their content cannot be de-identified


def walk_inputs(paths):
    """[(root, relative path, absolute path)] of every file under the inputs, sorted."""
    out = []
    for p in paths:
        if not os.path.exists(p):
            raise InputError("no such file or directory", p)
        if os.path.isdir(p):
            root = os.path.abspath(p)
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    out.append((root, os.path.relpath(full, root), full))
        else:
            full = os.path.abspath(p)
            out.append((os.path.dirname(full), os.path.basename(full), full))
    return out


#: the name ending of the DICOM files the structured layout writes (1.dcm, 2.dcm, ...)
_DICOM_FILE = BY_NAME["dicom"].extensions[0]
#: the formats whose gzipped files are rewritten (inflated, scrubbed, compressed again)
_GZIPPED = ("nifti1", "nifti2", "mgh")
#: files up to this size are read whole while being classified, so an image is opened once
_READ_WHOLE = 4 << 20


def scrubbable(kind: str) -> bool:
    """Whether a file of `kind` (classify's) is rewritten without its identifying header text: a JSON
    sidecar, or a file of a format whose backend declares "scrub" (gzipped: those of _GZIPPED)."""
    name = kind.removesuffix(".gz")
    if name != kind and name not in _GZIPPED:
        return False
    return name == "json" or (name in BY_NAME and BY_NAME[name].can("scrub"))


def classify(path: str, keep: list | None = None) -> str | None:
    """The kind of file by content: dicom, nifti1, nifti2, analyze, metaimage, nrrd, minc, mgh, png, jpeg,
    tiff, bmp, json, mapping (a medconv --mapping table) (with ".gz" for gzipped NIfTI/MGH) or None.

    With `keep` (a list), a small file's bytes are appended to it, for the caller to reuse. The
    format is found as every command finds it (formats.sniff); which formats are rewritten, and
    which of them also gzipped, is this module's choice.
    """
    from .. import formats

    name = os.path.basename(path)
    if name.upper() in SKIP_NAMES:
        return None
    if name.lower().endswith(_DATA_FILES):
        return None  # the data of a header (.hdr, .mhd, .nhdr): written with it, never on its own
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            if keep is not None and size < _READ_WHOLE:
                head = fh.read(size + 1)  # the whole file, read to its exact size (+1: one that grew)
                if len(head) <= size:
                    keep.append(head)
            else:
                head = fh.read(formats.HEAD_SIZE)
            head = head[:formats.HEAD_SIZE]
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    if head[:2] == b"\x1f\x8b":
        head = formats.gzip_head(path)  # the first member's start only: bytes after it must not hide the image
        if head is None:
            return None
        kind = next((k for k in formats.sniff(head) if k in _GZIPPED), None)
        return kind + ".gz" if kind else None
    if name.lower().endswith(".json") and head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"["):
        from .headers import mapping_file

        # a medconv --mapping table (original identifiers): its own kind, never copied
        return "mapping" if mapping_file(path, keep[-1] if keep and size < _READ_WHOLE else None) else "json"
    # the registry lists DICOM first: a DICOM file's preamble may hold a TIFF header (dual-personality files)
    found = formats.sniff(head)
    return found[0] if found else None


class Runner:
    def __init__(self, opts: Options, key=None, output=None, in_place=False, layout="structured", force=False,
                 exclude_burned_in=False, keep_going=False):
        self.opts = opts
        self.pseudo = Pseudonymizer(key)
        self.anon = Anonymizer(opts, self.pseudo)
        from .rewrite import ByteAnonymizer

        # MEDCONV_ANON_ENGINE=pydicom turns the byte-level path off (to compare the two, or to rule it out)
        self.fast = None if os.environ.get("MEDCONV_ANON_ENGINE") == "pydicom" else ByteAnonymizer(self.anon)
        self.output = output
        self.in_place = in_place
        self.layout = layout
        self.force = force
        self.exclude_burned_in = exclude_burned_in
        self.keep_going = keep_going
        self.summary = Summary()
        self._renamed_note = False
        self.counters: dict = {}
        self.protect: set = set()
        self._real_dirs: dict = {}
        self._made_dirs: set = set()
        self._folders: dict = {}

    def run(self, paths, jobs: int | None = 1):
        files = walk_inputs(paths)
        if self.in_place:
            for _, _, full in files:  # before anything is written: links among the files to rewrite
                if _linked(full) and (full.lower().endswith(_DATA_FILES) or classify(full) not in (None, "mapping")):
                    refuse_linked(full)
        # Resolved once: fileio.atomic_outputs would resolve every input again for every output.
        self.protect = {self._real(f) for _, _, f in files}
        if self.pseudo.generated:
            log.warn("no --key or MEDCONV_ANON_KEY: a random key was made for this run, so pseudonyms "
                     "will not match those of other runs")
        if self.opts.keep_private:
            log.warn("--keep-private keeps every private element: they can hold names, IDs and dates; review them")
        if self.layout == "mirror" and not self.in_place:
            log.warn("--layout mirror keeps input folder and file names, which often carry patient names or dates")
        if self.output and not self.in_place:
            out = os.path.abspath(self.output)
            for root, _, _ in files:
                if out == root:
                    raise UsageError("the output directory is an input directory (use another -o or --in-place)")
        if jobs is None:
            from ..batch import default_jobs

            jobs = default_jobs(len(files) // _CHUNK)
        parallel = self.fast is not None and jobs > 1 and len(files) >= 2 * _CHUNK
        ready = self._parallel(files, jobs) if parallel else None
        from ..batch import Progress

        bar = Progress("anonymize", len(files))  # only on a terminal
        try:
            for root, rel, full in files:
                bar.advance()
                result = next(ready) if ready is not None else None
                try:
                    if result is not None:
                        try:
                            self.dicom(rel, full, result=result)
                        except BaseException:
                            _discard(result)  # a worker's temporary file nobody will rename
                            raise
                        continue
                    whole = []
                    kind = classify(full, keep=whole)
                    if kind == "mapping":
                        from .headers import MAPPING_MESSAGE

                        log.warn(f"skipped: {MAPPING_MESSAGE}", full)
                        kind = None
                    if kind is None:
                        if os.path.basename(full).upper() in SKIP_NAMES:
                            log.warn("DICOMDIR skipped: it lists patient names and old paths; rebuild it "
                                     "afterwards", full)
                        self.summary.skipped += 1
                        continue
                    self.one(kind, root, rel, full, whole[0] if whole else None)
                except MedconvError as exc:  # an output error too: with -k the run goes on, as convert -k does
                    self._failed(full, exc)
                except Exception as exc:
                    # A malformed element deep in one file (pydicom parses sequences lazily) is that
                    # file's failure; nothing was written for it. The exception text may quote an
                    # identifying value: only its type is named.
                    self._failed(full, CorruptInput(f"unexpected content ({type(exc).__name__})", full))
        finally:
            bar.close()
            if ready is not None:
                ready.close()  # stops the workers when a write error ends the run early
        return self.summary

    def _failed(self, full: str, exc: MedconvError) -> None:
        """One input failed: the end without --keep-going, else counted for the summary (exit 5)."""
        if not self.keep_going:
            raise exc
        self.summary.failed += 1
        self.summary.failures.append(full)
        log.warn(f"not anonymised: {exc.message}", exc.path or full)

    def _parallel(self, files, jobs: int):
        """The fast path's result (or None: do it here) for every file, in input order, from worker
        processes; a few chunks in flight, so memory stays bounded whatever the tree's size."""
        import contextlib

        from ..batch import imap

        # In the structured layout a worker also writes each file, under a temporary name in its
        # series folder (file creation is the slow part on many file systems, and the bytes then
        # never cross a pipe); the main process names and renames them in input order.
        structured = self.output is not None and not self.in_place and self.layout != "mirror"
        setup = (os.urandom(8), self.opts, self.pseudo._key, self.exclude_burned_in,
                 self.output if structured else None)
        # stopped early (an error, a stop signal): workers stop after their current file, and the
        # temporary files nobody will rename are removed
        outcomes = imap([f for _, _, f in files], functools.partial(_work_one, setup), jobs=jobs, chunk=_CHUNK,
                        window=2 * jobs, on_discard=_discard_outcome, stop_signals=True)
        with contextlib.closing(outcomes):
            for _, kind, value in outcomes:
                if kind != "ok":
                    yield None  # not run (the batch is stopping): done here, if at all
                    continue
                result, mapping = value
                for what, values in mapping.items():
                    self.pseudo.mapping.setdefault(what, {}).update(values)
                yield result

    def _real(self, path: str) -> str:
        """os.path.realpath, with each directory resolved once per run (thousands of files share a few)."""
        folder, name = os.path.split(os.path.abspath(path))
        real_dir = self._real_dirs.get(folder)
        if real_dir is None:
            real_dir = self._real_dirs[folder] = os.path.realpath(folder)
        real = os.path.join(real_dir, name)
        return os.path.realpath(real) if os.path.islink(real) else real

    def _dest(self, rel: str, full: str) -> str:
        return full if self.in_place else os.path.join(self.output, rel)

    def _renamed(self, rel: str) -> str:
        """The structured layout's path of a file that is not DICOM: every folder and the file's name
        (its known extension kept) replaced by keyed pseudonyms, so no input name reaches the output;
        the same name gives the same pseudonym (a .hdr and its .img, an image and its .json stay
        pairs). The table goes to --mapping."""
        parts = rel.split(os.sep)
        new = os.path.join(*[self.pseudo.short("folder", p) for p in parts[:-1]], self._renamed_name(parts[-1]))
        self.pseudo.mapping.setdefault("path", {})[rel] = new
        return new

    def _renamed_path(self, value: str) -> str:
        """A relative path written in a sidecar ("ses-1/func/x_bold.nii.gz", "bids::sub-1/..."), each
        part renamed as the files themselves are."""
        prefix = "bids::" if value.startswith("bids::") else ""
        parts = value[len(prefix):].split("/")
        folders = [p if p in ("", ".", "..") else self.pseudo.short("folder", p) for p in parts[:-1]]
        return prefix + "/".join([*folders, self._renamed_name(parts[-1]) if parts[-1] else ""])

    def _renamed_name(self, name: str) -> str:
        low = name.lower()
        ext = next((e for e in _KNOWN_EXTENSIONS if low.endswith(e) and len(name) > len(e)), "")
        stem = name[:len(name) - len(ext)]
        return self.pseudo.short("file", stem) + ext

    def _write(self, dest: str, data: bytes, extra=()):
        """Write one output (plus companions) atomically."""
        dests = [dest, *[d for d, _ in extra]]
        if not self.in_place:
            for d in dests:
                # a path that does not exist yet cannot be an input (the common case: one lstat)
                if os.path.lexists(d) and self._real(d) in self.protect:
                    raise OutputError("refusing to overwrite an input file", d)
        force = self.force or self.in_place
        if not extra:
            fileio.write_bytes_atomic(os.path.abspath(dest), data, force=force, made_dirs=self._made_dirs)
            return
        with fileio.atomic_outputs(dests, force=force) as temps:
            for tmp, blob in zip(temps, [data, *[b for _, b in extra]]):
                with open(tmp, "wb") as fh:
                    fh.write(blob)

    def one(self, kind: str, root: str, rel: str, full: str, data: bytes | None = None) -> None:
        from . import headers

        if kind == "dicom":
            import warnings

            with warnings.catch_warnings():
                # pydicom warns (multi-line, on stderr) about values that break VR rules; the file is
                # anonymised all the same and stderr keeps medconv's one-line messages
                warnings.simplefilter("ignore")
                return self.dicom(rel, full, data)
        if not scrubbable(kind):
            self.summary.skipped += 1
            return
        # header scrubbed, data cut to what the header describes (companions: a detached data
        # file, the .img of a .hdr); MINC and rasters are decoded again and compared
        new_bytes, _, companions = headers.scrub_file(kind, full, data, keep_descriptors=self.opts.keep_descriptors)
        renamed = not self.in_place and self.layout != "mirror"
        dest = os.path.join(self.output, self._renamed(rel)) if renamed else self._dest(rel, full)
        if renamed and kind == "json":
            # paths to other files of the tree (IntendedFor, Sources) name them as they are now
            new_bytes = headers.renamed_paths(new_bytes, self._renamed_path)
        if renamed and not self._renamed_note:
            self._renamed_note = True  # once per run
            log.note("folder and file names of files other than DICOM are replaced by keyed pseudonyms "
                     "(--mapping lists them; --layout mirror keeps the input's names)")
        extra = []
        for c, kept in companions:
            if self.in_place:
                refuse_linked(c)
                extra.append((c, kept))
            elif renamed:
                name = self._renamed_name(os.path.basename(c))
                new_bytes = headers.point_to(kind, new_bytes, name)  # a detached header names its data file
                extra.append((os.path.join(os.path.dirname(dest), name), kept))
            else:  # at the same place relative to its header (a data file may sit in a sub-folder)
                extra.append((os.path.join(os.path.dirname(dest), os.path.relpath(c, os.path.dirname(full))), kept))

        self._write(dest, new_bytes, extra)
        self.summary.done += 1

    def dicom(self, rel: str, full: str, data: bytes | None = None, result: dict | None = None) -> None:
        if result is None and self.fast is not None:
            if data is None:
                data = fileio.read_bytes(full)
            result = self.fast.anonymize(data, skip_flagged=self.exclude_burned_in)
        if result is None:
            result = self._dicom_with_pydicom(full)
            if result is None:
                return
        if result.get("unscrubbable"):
            if result.get("bytes") is None and result.get("tmp") is None:
                self.summary.unscrubbable += 1  # reported once, with the count, by finish()
                return
            log.warn(f"copied with --keep-unscrubbable: its {result['unscrubbable']} content is not "
                     "de-identified; read it before sharing", full)
        if result.get("header_only"):
            log.warn("image object without pixel data (a header-only object, or a file cut short before "
                     "its image): header de-identified", full)
        flagged, suspect = result["flagged"], result["suspect"]
        if flagged:
            if self.exclude_burned_in:
                log.warn("skipped: BurnedInAnnotation is YES (--exclude-burned-in)", full)
                self.summary.skipped += 1
                return
            log.warn("BurnedInAnnotation is YES: pixels may show identifying text (PatientIdentityRemoved set to "
                     "NO; use --exclude-burned-in to skip such images)", full)
        elif suspect:
            log.warn(f"possible burned-in text: {suspect}; check the pixels (PatientIdentityRemoved set to NO "
                     "unless BurnedInAnnotation is NO)", full)
        if result.get("tmp") is not None:
            return self._commit(result, full)
        if self.in_place or self.layout == "mirror":
            dest = self._dest(rel, full)
        else:
            dest = self._numbered(result)
        self._write(dest, result["bytes"])
        self.summary.done += 1

    def _numbered(self, result: dict) -> str:
        """DIR/<patient>/<study>/<series>/<n>.dcm, n counting per series folder in input order."""
        folder = self._series_folder(self.output, self.pseudo, result)
        n = self.counters.get(folder, 0) + 1
        self.counters[folder] = n
        return os.path.join(folder, str(n) + _DICOM_FILE)

    def _series_folder(self, output, pseudo, result) -> str:
        key = (result["pid"], result["study"], result["series"])
        folder = self._folders.get(key)
        if folder is None:
            folder = self._folders[key] = series_folder(output, pseudo, result)
        return folder

    def _commit(self, result: dict, full: str) -> None:
        """Rename a worker's temporary file to its numbered name (checks as for any output)."""
        tmp = result["tmp"]
        try:
            dest = self._numbered(result)
            if os.path.dirname(dest) != os.path.dirname(tmp):
                raise OutputError("internal: a worker wrote into another folder", dest)
            if os.path.lexists(dest):
                if self._real(dest) in self.protect:
                    raise OutputError("refusing to overwrite an input file", dest)
                if os.path.isdir(dest):
                    raise OutputError("destination is a directory", dest)
                if not self.force:
                    raise OutputError("destination exists (use --force to replace it)", dest)
        except BaseException:
            _discard(result)
            raise
        fileio.commit_temp(tmp, dest)  # removed on any failure
        self.summary.done += 1

    def _dicom_with_pydicom(self, full: str) -> dict | None:
        """The reference path, for every file rewrite.py steps aside from; None when there is nothing to write."""
        # What the byte-level path hands over for nesting deeper than its own walk is done here; deeper
        # than MAX_NESTING is refused before writing, since pydicom's writer turns a RecursionError into
        # messages quoting the whole stack at every level (gigabytes)
        with deep_stack():
            return self._pydicom_path(full)

    def _pydicom_path(self, full: str) -> dict | None:
        import warnings

        from pydicom.errors import InvalidDicomError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's per-element warnings are noise here
                from ..dicom import guards as dcm_guards
                ds = dcm_guards.dcmread(full, full, force=True)
                list(ds.keys())
        except RecursionError:
            raise InputError(f"cannot read as DICOM: sequences nested deeper than {MAX_NESTING} levels",
                             full) from None
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
            raise InputError(f"cannot read as DICOM ({type(exc).__name__})", full) from None
        if len(ds) == 0 or ("SOPClassUID" not in ds and "PixelData" not in ds):
            meta = getattr(ds, "file_meta", None)
            if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY_CLASS:
                log.warn("DICOMDIR skipped: it lists patient names and old paths; rebuild it afterwards", full)
            self.summary.skipped += 1  # no DICOM object in it: nothing is written for it
            return None
        check_truncated(ds, full)  # first: it reads the elements pydicom has not decoded yet
        depth = _nesting(ds)
        if depth > MAX_NESTING:
            raise InputError(f"sequences nested {depth} levels deep (medconv anonymises up to {MAX_NESTING})",
                             full)
        header_only = check_complete(ds, full)
        what = unscrubbable(ds.get("SOPClassUID"))
        if what and not self.opts.keep_unscrubbable:
            return {"bytes": None, "unscrubbable": what, "flagged": False, "suspect": None}
        flagged, suspect = burned_in_status(ds)
        if flagged and self.exclude_burned_in:
            return {"flagged": True, "suspect": None, "bytes": None}
        document = ds[ENCAPSULATED_DOCUMENT] if what and ENCAPSULATED_DOCUMENT in ds else None
        document = None if document is None else (document.VR, document.value)
        try:
            pid = self.anon.anonymize(ds)
            if document is not None:
                ds.add_new(ENCAPSULATED_DOCUMENT, *document)  # --keep-unscrubbable: the document as it is
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise InputError(f"cannot anonymise this DICOM data set ({type(exc).__name__})", full) from None
        _ensure_meta(ds)
        _defined_lengths(ds)
        ds.preamble = b"\0" * 128  # a preamble can hold anything (TIFF headers, text): never copied
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = _write_dataset(ds)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"cannot write the anonymised data set ({type(exc).__name__})", full) from None
        return {"bytes": data, "pid": pid, "flagged": flagged, "suspect": suspect, "unscrubbable": what,
                "header_only": header_only,
                "study": str(ds.get("StudyInstanceUID", "") or ""), "series": str(ds.get("SeriesInstanceUID", "") or "")}


def _nesting(ds) -> int:
    """How many sequence levels `ds` nests (walked without recursion, reading every item)."""
    deepest, stack = 0, [(ds, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        for elem in item:
            if elem.VR == "SQ":
                stack.extend((child, depth + 1) for child in elem.value or [])
    return deepest


def _write_dataset(ds) -> bytes:
    """The Part 10 bytes of an anonymised data set. pydicom refuses to write command elements
    (group 0000) that some stored objects carry; those the profile kept (UIDs it replaced) are
    encoded apart and placed after the file meta, where their tags sort."""
    import struct
    from io import BytesIO

    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    command = Dataset()
    for tag in [e.tag for e in ds if e.tag.group == 0]:
        command[tag] = ds[tag]
        del ds[tag]
    buf = BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    data = buf.getvalue()
    ts = ds.file_meta.TransferSyntaxUID
    if not len(command) or ts.is_deflated:
        return data
    enc = DicomBytesIO()
    enc.is_little_endian, enc.is_implicit_VR = ts.is_little_endian, ts.is_implicit_VR
    write_dataset(enc, command)
    meta_end = 144 + struct.unpack_from("<I", data, 140)[0]
    return data[:meta_end] + enc.getvalue() + data[meta_end:]


#: files per task of a worker process
_CHUNK = 64
#: extensions kept when a file that is not DICOM is renamed (the rest of its name is replaced):
#: every file of the other formats (data files included, longest first) and JSON sidecars
_KNOWN_EXTENSIONS = tuple(e for e in FILE_EXTENSIONS if e not in BY_NAME["dicom"].extensions) + (".json",)


#: a worker's anonymiser, made for the first file of a run and kept for the others
_WORKER_STATE: dict = {}


def _work_one(setup, full):
    """In a worker: the fast path over one file -> (result or None, pseudonym mapping made).

    None means "the main process does this file" (not DICOM, large, unusual, or any error), so
    every message and failure is reported there, exactly as without workers.
    """
    from .rewrite import ByteAnonymizer

    run_id, opts, key, skip_flagged, output = setup
    if _WORKER_STATE.get("run") != run_id:
        pseudo = Pseudonymizer(raw_key=key)
        _WORKER_STATE.update(run=run_id, pseudo=pseudo, fast=ByteAnonymizer(Anonymizer(opts, pseudo)), made=set())
    pseudo = _WORKER_STATE["pseudo"]
    pseudo.mapping = {}  # what this file adds
    try:
        whole = []
        if classify(full, keep=whole) != "dicom" or not whole:
            return None, pseudo.mapping
        result = _WORKER_STATE["fast"].anonymize(whole[0], skip_flagged=skip_flagged)
        if result is not None and output is not None and result.get("bytes") is not None:
            folder = series_folder(output, pseudo, result)
            result["tmp"] = fileio.write_temp(folder, result.pop("bytes"), _WORKER_STATE["made"])
        return result, pseudo.mapping
    except Exception:
        return None, pseudo.mapping  # the main process does it again, and reports what goes wrong


def series_folder(output: str, pseudo, result: dict) -> str:
    """The structured layout's folder of a result: DIR/<patient>/<study>/<series>."""
    return os.path.join(output, _safe(result["pid"]), pseudo.short("study", result["study"]),
                        pseudo.short("series", result["series"]))


#: the data files of a header (.hdr, .mhd, .nhdr), rewritten with it
_DATA_FILES = DATA_EXTENSIONS


def _linked(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISLNK(st.st_mode) or st.st_nlink > 1


def refuse_linked(path: str) -> None:
    """--in-place replaces a file by renaming a new one over it: on a symbolic link (DataLad and
    git-annex trees) that replaces the link and leaves the identified file it points to, and on a
    file with other hard links those names keep the original. Both are refused."""
    try:
        st = os.lstat(path)
    except OSError:
        return  # reported when it is read
    import stat

    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise InputError(f"is a symbolic link to {target}: --in-place would replace the link and leave the "
                         "file it points to as it is; unlock or copy the file first, or write to -o DIR", path)
    if st.st_nlink > 1:
        raise InputError(f"has {st.st_nlink} hard links: --in-place would replace this name only and the "
                         "others would keep the original; write to -o DIR instead", path)


def _discard(result) -> None:
    """Remove the temporary file of a worker's result that will not be renamed."""
    tmp = result.get("tmp") if isinstance(result, dict) else None
    if tmp:
        fileio.discard_temp(tmp)


def _discard_outcome(value) -> None:
    _discard(value[0])


def _defined_lengths(ds) -> None:
    """Sequences and items written with explicit lengths, as the byte-level path writes them, so a
    file comes out the same whichever path anonymised it (and anonymising it again is a no-op)."""
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = False
            for item in elem.value or []:
                item.is_undefined_length_sequence_item = False
                _defined_lengths(item)


def check_truncated(ds, path: str) -> None:
    """pydicom keeps a short last value and drops a cut element header without a word; a file cut
    anywhere in its top-level data set is refused rather than anonymised into a plausible stub."""
    from pydicom.dataelem import RawDataElement

    end = 0
    for raw in list(ds._dict.values()):
        if not isinstance(raw, RawDataElement) or raw.length == 0xFFFFFFFF:
            end = None if isinstance(raw, RawDataElement) else end
            continue
        if raw.value is not None and len(raw.value) < raw.length:
            raise CorruptInput(f"element ({raw.tag.group:04X},{raw.tag.element:04X}) is cut short "
                               "(truncated file?)", path)
        if end is not None:
            end = max(end, raw.value_tell + raw.length)
    if end:
        try:
            with open(path, "rb") as fh:
                fh.seek(end)
                tail = fh.read(8)
        except OSError:
            return
        if 0 < len(tail) < 8 and tail.strip(b"\0"):
            raise CorruptInput("the file ends inside an element header (truncated file?)", path)


def check_complete(ds, path: str) -> bool:
    """pydicom stops quietly at a truncated element; refuse an image whose pixels are missing or short.

    True for an image object that holds no element of group 0028 and no pixels at all: a header-only
    object (DICOMDIR test sets, objects stripped for sharing), de-identified like any other with a
    warning. An object cut inside its image module (some of group 0028, no pixels) is refused.
    """
    from ..errors import CorruptInput
    from .actions import is_image_class

    pixel_keys = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    if "Rows" not in ds or "Columns" not in ds:
        if is_image_class(ds.get("SOPClassUID", "")) and not any(k in ds for k in pixel_keys):
            if not any(tag >> 16 == 0x0028 for tag in ds._dict):
                return True
            # an image object without its image module: cut at an element boundary
            raise CorruptInput("image without rows, columns or pixel data (truncated file?)", path)
        return False
    if not any(k in ds for k in pixel_keys):
        raise CorruptInput("image without pixel data (truncated file?)", path)
    elem = ds["PixelData"] if "PixelData" in ds else None  # noqa: SIM401 - the element, not its value
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if elem is not None and (ts is None or not ts.is_compressed):
        try:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            needed = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * frames \
                * int(ds.get("BitsAllocated", 16)) // 8
        except (TypeError, ValueError):
            return False
        if len(elem.value or b"") < needed:
            raise CorruptInput(f"pixel data is {len(elem.value or b'')} bytes, the header needs {needed} "
                               "(truncated file?)", path)
    return False


@functools.lru_cache(maxsize=4096)
def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name)) or "ANON"


def _ensure_meta(ds) -> None:
    """Files read without a meta header get one matching their encoding, so they save as Part 10."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import (
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        if implicit is None:
            implicit, little = True, True
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def check_mapping_path(mapping: str, paths, output: str | None, in_place: bool, force: bool) -> None:
    """Before anything is written: the mapping (original identifiers) must not replace an input,
    must not land in the anonymised tree or in an input tree (a later run would find it there), and
    must not exist unless --force."""
    target = os.path.realpath(mapping)
    for p in paths:
        if os.path.isfile(p) and os.path.realpath(p) == target:
            raise OutputError("refusing to overwrite an input file with the mapping", mapping)
    trees = [os.path.realpath(output)] if output and not in_place else []
    trees += [os.path.realpath(p) for p in paths if os.path.isdir(p)]
    for tree in trees:
        if target == tree or target.startswith(tree.rstrip(os.sep) + os.sep):
            which = "anonymised" if output and tree == os.path.realpath(output) else "input"
            raise UsageError(f"--mapping {mapping} is inside the {which} tree {tree}: it holds the original "
                             "identifiers; write it elsewhere")
    if os.path.lexists(mapping) and not force:
        raise OutputError("destination exists (use --force to replace it)", mapping)
    if os.path.isdir(mapping):
        raise OutputError("destination is a directory", mapping)
    # the folder must exist and take a new file now: found only after the run, a mapping made
    # with a random key would be lost for good
    parent = os.path.dirname(os.path.abspath(mapping))
    if not os.path.isdir(parent):
        raise OutputError("the mapping's folder does not exist", mapping)
    probe = os.path.join(parent, f".medconv-{os.urandom(6).hex()}.part")
    try:
        with fileio.uninterrupted:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write the mapping in this folder ({exc.strerror})", mapping) from None


def finish(runner: Runner, mapping_path: str | None) -> None:
    """Write the mapping and print the summary on stderr; BatchFailed (exit 5) when files failed
    under --keep-going (the summary has said so)."""
    s = runner.summary
    if mapping_path:
        write_mapping(mapping_path, runner.pseudo.mapping, force=runner.force)
    if s.unscrubbable and runner.in_place:
        log.warn(f"left {s.unscrubbable} DICOM object(s) as they are, still identified: their content cannot be "
                 "de-identified (encapsulated PDF/CDA/3D documents, raw data); remove them, or use "
                 "--keep-unscrubbable to de-identify their headers")
    elif s.unscrubbable:
        log.warn(f"left out {s.unscrubbable} DICOM object(s) whose content cannot be de-identified (encapsulated "
                 "PDF/CDA/3D documents, raw data); --keep-unscrubbable copies them")
    log.note(f"anonymised {s.done} file(s), skipped {s.skipped} (not images), failed {s.failed}")
    if s.failed:
        from ..errors import BatchFailed

        raise BatchFailed(f"{s.failed} file(s) failed", reported=True)
