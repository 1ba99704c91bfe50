"""medconv anonymize: de-identify DICOM trees and scrub other image headers.

`run()` walks the inputs, anonymises each DICOM file with the PS3.15 profile
(actions.py), scrubs the headers of every other image format and JSON sidecars
(headers.py), skips everything else, and writes atomically. `check.py` reports
what identifying data remains.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from .. import io, log
from ..errors import CorruptInput, InputError, MedconvError, OutputError, UsageError
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


#: files up to this size are read whole while being classified, so an image is opened once
_READ_WHOLE = 4 << 20


def classify(path: str, keep: list | None = None) -> str | None:
    """The kind of file by content: dicom, nifti1, nifti2, analyze, metaimage, nrrd, minc, mgh, png, jpeg,
    tiff, bmp, json, mapping (a medconv --mapping table) (with ".gz" for gzipped NIfTI/MGH) or None.

    With `keep` (a list), a small file's bytes are appended to it, for the caller to reuse.
    """
    from ..formats import _sniff

    name = os.path.basename(path)
    if name.upper() in SKIP_NAMES:
        return None
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            if keep is not None and size < _READ_WHOLE:
                head = fh.read(size + 1)  # the whole file, read to its exact size (+1: one that grew)
                if len(head) <= size:
                    keep.append(head)
            else:
                head = fh.read(1024)
            head = head[:1024]
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    if head[:2] == b"\x1f\x8b":
        import gzip
        import zlib

        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(1024)
        except (OSError, EOFError, zlib.error):
            return None
        kind = _first(head, _sniff, ("nifti1", "nifti2", "mgh"))
        return kind + ".gz" if kind else None
    if name.lower().endswith(".json") and head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"["):
        from .headers import mapping_file

        # a medconv --mapping table (original identifiers): its own kind, never copied
        return "mapping" if mapping_file(path, keep[-1] if keep and size < _READ_WHOLE else None) else "json"
    if name.lower().endswith(".img"):
        return None  # the data half of a .hdr/.img pair: copied with its header
    # dicom first: a DICOM file's preamble may hold a TIFF header (dual-personality files)
    return _first(head, _sniff, ("dicom", "nifti1", "nifti2", "analyze", "nrrd", "minc", "mgh", "png", "jpeg",
                                 "tiff", "bmp", "metaimage"))


def _first(head, sniff, kinds):
    for kind in kinds:
        try:
            if getattr(sniff, kind)(head):
                return kind
        except Exception:
            continue
    return None


class Runner:
    def __init__(self, opts: Options, key=None, output=None, in_place=False, layout="structured", force=False,
                 exclude_burned_in=False, keep_going=False):
        self.opts = opts
        self.pseudo = Pseudonymizer(key)
        self.anon = Anonymizer(opts, self.pseudo)
        from .fast import FastAnonymizer

        # MEDCONV_ANON_ENGINE=pydicom turns the byte-level path off (to compare the two, or to rule it out)
        self.fast = None if os.environ.get("MEDCONV_ANON_ENGINE") == "pydicom" else FastAnonymizer(self.anon)
        self.output = output
        self.in_place = in_place
        self.layout = layout
        self.force = force
        self.exclude_burned_in = exclude_burned_in
        self.keep_going = keep_going
        self._named_warned = False
        self.summary = Summary()
        self.counters: dict = {}
        self.protect: set = set()
        self._real_dirs: dict = {}
        self._made_dirs: set = set()
        self._folders: dict = {}

    def run(self, paths, jobs: int | None = 1):
        files = walk_inputs(paths)
        # Resolved once: io.atomic_outputs would resolve every input again for every output.
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
        from ..batch import _Progress

        bar = _Progress("anonymize", len(files))  # only on a terminal
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
                except OutputError:
                    raise
                except MedconvError as exc:
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
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        from ..batch import _init_worker

        # In the structured layout a worker also writes each file, under a temporary name in its
        # series folder (file creation is the slow part on many file systems, and the bytes then
        # never cross a pipe); the main process names and renames them in input order.
        structured = self.output is not None and not self.in_place and self.layout != "mirror"
        setup = (self.opts, self.pseudo._key, self.exclude_burned_in, self.output if structured else None)
        chunks = iter([f for _, _, f in files[i:i + _CHUNK]] for i in range(0, len(files), _CHUNK))
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pending: list = []
        window: deque = deque()
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                     initargs=(log.is_quiet(),)) as pool:
                window.extend(pool.submit(_work_chunk, setup, c) for c in _take(chunks, 2 * jobs))
                while window:
                    # result first, then out of the window: an interrupt while waiting must leave the
                    # future where the clean-up below finds its temporary files
                    results, mapping = window[0].result()
                    window.popleft()
                    for c in _take(chunks, 1):
                        window.append(pool.submit(_work_chunk, setup, c))
                    for kind, values in mapping.items():
                        self.pseudo.mapping.setdefault(kind, {}).update(values)
                    pending = list(reversed(results))
                    while pending:
                        yield pending.pop()
        finally:
            # stopped early (an error, Ctrl-C): temporary files nobody will rename are removed
            leftovers = list(pending)
            for future in window:
                if not future.cancel():
                    try:
                        leftovers += future.result()[0]
                    except BaseException:
                        pass
            for result in leftovers:
                _discard(result)

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
            io.write_bytes_atomic(os.path.abspath(dest), data, force=force, made_dirs=self._made_dirs)
            return
        with io.atomic_outputs(dests, force=force) as temps:
            with open(temps[0], "wb") as fh:
                fh.write(data)
            for tmp, (_, src) in zip(temps[1:], extra):
                import shutil

                shutil.copyfile(src, tmp)

    def one(self, kind: str, root: str, rel: str, full: str, data: bytes | None = None) -> None:
        from . import headers

        if kind == "dicom":
            import warnings

            with warnings.catch_warnings():
                # pydicom warns (multi-line, on stderr) about values that break VR rules; the file is
                # anonymised all the same and stderr keeps medconv's one-line messages
                warnings.simplefilter("ignore")
                return self.dicom(rel, full, data)
        if data is None or kind.endswith(".gz"):
            data = io.read_bytes(full)  # gzip inflated
        companions = []
        if kind.endswith(".gz"):
            if kind == "mgh.gz":
                new, _ = headers.scrub_mgh(data, full)
            else:
                new, _ = headers.scrub_nifti_like(data, kind[:-3], full)
            import gzip

            new_bytes = gzip.compress(new, compresslevel=6, mtime=0)
        elif kind in ("nifti1", "nifti2", "analyze"):
            new_bytes, _ = headers.scrub_nifti_like(data, kind, full)
            if full.lower().endswith(".hdr"):
                img = full[:-4] + (".img" if full.endswith(".hdr") else ".IMG")
                if not os.path.exists(img):
                    raise InputError("the .img file of this .hdr is missing", full)
                companions.append(img)
        elif kind == "metaimage":
            new_bytes, _ = headers.scrub_metaimage(data, full)
            companions += _detached(new_bytes, full, b"elementdatafile", b"=")
        elif kind == "nrrd":
            new_bytes, _ = headers.scrub_nrrd(data, full)
            companions += _detached(new_bytes, full, b"data file", b":")
        elif kind == "json":
            new_bytes, _ = headers.scrub_json(data, full)
        elif kind == "mgh":
            new_bytes, _ = headers.scrub_mgh(data, full)
        elif kind == "minc":
            new_bytes, _ = headers.scrub_minc(data, full)  # read back and compared with the input
        elif kind in ("png", "jpeg", "tiff", "bmp"):
            new_bytes, _ = headers.scrub_raster(kind, data, full)  # pixels decoded and compared
        else:
            self.summary.skipped += 1
            return
        dest = self._dest(rel, full)
        extra = []
        if not self.in_place and self.layout != "mirror" and not self._named_warned:
            self._named_warned = True  # once per run; --layout mirror already warned about every name
            log.warn("files other than DICOM keep their relative paths under the output; rename any "
                     "folder or file whose name identifies someone", full)
        if not self.in_place:
            for c in companions:
                extra.append((os.path.join(os.path.dirname(dest), os.path.basename(c)), c))

        self._write(dest, new_bytes, extra)
        self.summary.done += 1

    def dicom(self, rel: str, full: str, data: bytes | None = None, result: dict | None = None) -> None:
        if result is None and self.fast is not None:
            if data is None:
                data = io.read_bytes(full)
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
        return os.path.join(folder, f"{n}.dcm")

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
            try:
                os.replace(tmp, dest)
            except OSError as exc:
                raise OutputError(f"cannot write here ({exc.strerror})", dest) from None
            tmp = None
            self.summary.done += 1
        finally:
            if tmp is not None:
                _discard(result)

    def _dicom_with_pydicom(self, full: str) -> dict | None:
        """The reference path, for every file fast.py steps aside from; None when there is nothing to write."""
        # What the byte-level path hands over for nesting deeper than its own walk is done here; deeper
        # than MAX_NESTING is refused before writing, since pydicom's writer turns a RecursionError into
        # messages quoting the whole stack at every level (gigabytes)
        with deep_stack():
            return self._pydicom_path(full)

    def _pydicom_path(self, full: str) -> dict | None:
        import warnings

        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's per-element warnings are noise here
                ds = pydicom.dcmread(full, force=True)
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
        _check_truncated(ds, full)  # first: it reads the elements pydicom has not decoded yet
        depth = _nesting(ds)
        if depth > MAX_NESTING:
            raise InputError(f"sequences nested {depth} levels deep (medconv anonymises up to {MAX_NESTING})",
                             full)
        header_only = _check_complete(ds, full)
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


def _take(iterator, n):
    out = []
    for item in iterator:
        out.append(item)
        if len(out) == n:
            break
    return out


def _work_chunk(setup, paths):
    """In a worker: the fast path over some files -> ([result or None], pseudonym mapping made).

    None means "the main process does this file" (not DICOM, large, unusual, or any error), so
    every message and failure is reported there, exactly as without workers.
    """
    from .fast import FastAnonymizer

    opts, key, skip_flagged, output = setup
    pseudo = Pseudonymizer(raw_key=key)
    fast = FastAnonymizer(Anonymizer(opts, pseudo))
    out = []
    made: set = set()
    for full in paths:
        try:
            whole = []
            if classify(full, keep=whole) != "dicom" or not whole:
                out.append(None)
                continue
            result = fast.anonymize(whole[0], skip_flagged=skip_flagged)
            if result is not None and output is not None and result.get("bytes") is not None:
                folder = series_folder(output, pseudo, result)
                result["tmp"] = io.write_temp(folder, result.pop("bytes"), made)
            out.append(result)
        except Exception:
            out.append(None)  # the main process does it again, and reports what goes wrong
    return out, pseudo.mapping


def series_folder(output: str, pseudo, result: dict) -> str:
    """The structured layout's folder of a result: DIR/<patient>/<study>/<series>."""
    return os.path.join(output, _safe(result["pid"]), pseudo.short("study", result["study"]),
                        pseudo.short("series", result["series"]))


def _discard(result) -> None:
    """Remove the temporary file of a worker's result that will not be renamed."""
    tmp = result.get("tmp") if isinstance(result, dict) else None
    if tmp:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _defined_lengths(ds) -> None:
    """Sequences and items written with explicit lengths, as the byte-level path writes them, so a
    file comes out the same whichever path anonymised it (and anonymising it again is a no-op)."""
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = False
            for item in elem.value or []:
                item.is_undefined_length_sequence_item = False
                _defined_lengths(item)


def _check_truncated(ds, path: str) -> None:
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


def _check_complete(ds, path: str) -> bool:
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


def _detached(header: bytes, path: str, key: bytes, sep: bytes) -> list:
    """The relative data file a detached MetaImage/NRRD header names (to copy beside it)."""
    for line in header.splitlines():
        k, _, v = line.partition(sep)
        if k.strip().lower() == key:
            v = v.strip().decode("latin-1")
            if v.upper() in ("LOCAL", "") or v.upper().startswith("LIST") or "%" in v:
                return []
            src = os.path.join(os.path.dirname(path), v)
            if os.path.isabs(v) or os.sep in v or not os.path.exists(src):
                raise InputError(f"the data file {v!r} must be a file beside the header", path)
            return [src]
    return []


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


def finish(runner: Runner, mapping_path: str | None) -> int:
    """Write the mapping, print the summary on stderr, return the exit code."""
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
    return 5 if s.failed else 0
