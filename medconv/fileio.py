"""File plumbing shared by every backend: atomic writes, fast gzip, size guards."""
from __future__ import annotations

import contextlib
import errno
import os

from .errors import CorruptInput, InputError, OutputError

GZIP_MAGIC = b"\x1f\x8b"
#: deflate level of written .gz files and compressed MetaImage/NRRD data, as zlib counts them:
#: 0 stores, 1 is ISA-L's fastest setting (its level 3: slightly larger files than zlib 6, far
#: faster), 2-9 are zlib-ng at that level (3: a little larger than zlib 6 and much faster; 6: zlib
#: 6's size). `make bench` measures the trade-off.
DEFAULT_COMPRESSION = 3
_state = {"level": DEFAULT_COMPRESSION, "threads": None}


def set_compression(level: int | None = None, threads: int | None = None) -> None:
    if level is not None:
        _state["level"] = int(level)
    if threads is not None:
        _state["threads"] = int(threads)


@contextlib.contextmanager
def compression_threads(threads: int):
    """Within the block, .gz outputs are compressed on `threads` threads (0: the calling thread)."""
    before = _state["threads"]
    _state["threads"] = int(threads)
    try:
        yield
    finally:
        _state["threads"] = before


@contextlib.contextmanager
def opening(path: str, error=InputError):
    """The reasons a file cannot be opened, as one-line errors of class `error` naming `path`."""
    try:
        yield
    except FileNotFoundError:
        raise error("no such file", path) from None
    except IsADirectoryError:
        raise error("is a directory", path) from None
    except PermissionError:
        raise error("permission denied", path) from None


def _threads() -> int:
    if _state["threads"] is not None:
        return _state["threads"]  # 0: compress on the calling thread
    return max(1, min(4, os.cpu_count() or 1))


def read_bytes(path: str, limit: int | None = None, most: int | None = None) -> bytes:
    """Read a file (or its first `limit` bytes), decompressing gzip transparently.

    `limit` often comes from a header: a negative one is a corrupt input, and a huge one never
    allocates more than the bytes really there. `most`: the size the file's header declares (plus
    slack) when the whole file is read: a gzip stream inflating beyond it is refused (a bomb)."""
    if limit is not None and limit < 0:
        raise CorruptInput(f"header declares a negative size ({limit})", path)
    with opening(path), open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        if head == GZIP_MAGIC:
            return gunzip_file(path, limit, most)
        if limit is not None:
            import stat

            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode):  # not for pipes, whose size says nothing
                limit = min(limit, st.st_size)
        return fh.read() if limit is None else fh.read(limit)


def gunzip_file(path: str, limit: int | None = None, most: int | None = None) -> bytes:
    """Decompress a gzip file (the whole of it, or at least its first `limit` bytes); with `most`,
    a stream holding more than `most` bytes is refused before more is inflated."""
    from isal import igzip

    try:
        with igzip.open(path, "rb") as fh:
            if limit is None and most is None:
                return fh.read()
            if limit is None:
                blob = _read_at_most(fh, most + 1)
                if len(blob) > most:
                    raise CorruptInput(f"compressed data inflates to more than {most} bytes, more than its header "
                                       "declares (refused as a decompression bomb)", path)
                return blob
            return _read_at_most(fh, limit)
    except gzip_errors() as exc:
        if limit is not None:
            raise CorruptInput(f"not a valid gzip stream ({exc})", path) from None
        raise CorruptInput(f"compressed data is truncated or corrupt ({exc})", path) from None


def _read_at_most(fh, n: int) -> bytes:
    """Up to n bytes, read in pieces: a header's huge claim must not allocate before reading."""
    chunks, left = [], n
    while left > 0:
        piece = fh.read(min(left, 1 << 24))
        if not piece:
            break
        chunks.append(piece)
        left -= len(piece)
    return b"".join(chunks)


def gzip_errors() -> tuple:
    """Exceptions a corrupt gzip stream raises (ISA-L has its own type besides OSError)."""
    from isal.igzip_lib import IsalError

    return (OSError, EOFError, ValueError, IsalError)


def _level(level: int | None = None) -> int:
    return max(0, min(9, int(_state["level"] if level is None else level)))


def compressobj(level: int | None = None):
    """A zlib-format compressor at medconv's level (see DEFAULT_COMPRESSION)."""
    level = _level(level)
    if level == 1:
        from isal import isal_zlib

        return isal_zlib.compressobj(3)
    from zlib_ng import zlib_ng

    return zlib_ng.compressobj(level)


#: outputs of a known size below this are deflated in blocks on threads once written (BlockGzip); the
#: threaded streaming writers, which work in 1 MiB blocks and notice the end of the stream only at
#: their workers' next 50 ms queue poll, take larger ones (and those of unknown size)
SMALL_OUTPUT = 16 << 20
#: outputs below this are deflated on the calling thread alone
TINY_OUTPUT = 1 << 20


def open_write(path_or_file, compress: bool, size_hint: int | None = None):
    """A binary file object for writing; gzip on several threads (ISA-L or zlib-ng) when `compress`
    (`size_hint`: the bytes to be written, when known)."""
    if not compress:
        return open(path_or_file, "wb")
    level = _level()
    if size_hint is not None and size_hint < SMALL_OUTPUT:
        return BlockGzip(path_or_file, level, 1 if size_hint < TINY_OUTPUT else max(1, _threads()))
    threads = _threads()
    if level == 1:
        from isal import igzip_threaded

        return igzip_threaded.open(path_or_file, "wb", compresslevel=3, threads=threads)
    from zlib_ng import gzip_ng_threaded

    return gzip_ng_threaded.open(path_or_file, "wb", compresslevel=level, threads=threads)


class BlockGzip:
    """A gzip file written whole on close: one member whose deflate stream is cut into BLOCK-byte
    blocks, each deflated on its own (primed with the 32 KiB before it, so the ratio barely changes)
    and ended with a sync flush, on up to `threads` threads (the calling one among them). The bytes
    are held in memory until then: for outputs of modest size only."""

    BLOCK = 1 << 18
    _WINDOW = 1 << 15

    def __init__(self, path_or_file, level: int, threads: int):
        self._own = isinstance(path_or_file, (str, bytes, os.PathLike))
        self._fh = open(path_or_file, "wb") if self._own else path_or_file
        self._level, self._threads = level, threads
        self._buf = bytearray()
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self._buf += view
        return view.nbytes

    def writable(self) -> bool:
        return True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:  # the write failed part-way: nothing worth deflating
            self._buf = bytearray()
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # deflate, no name, mtime 0
            crc = 0
            for block, block_crc, length in self._deflate():
                self._fh.write(block)
                crc = _crc32_combine(crc, block_crc, length)
            self._fh.write(crc.to_bytes(4, "little") + (len(self._buf) & 0xFFFFFFFF).to_bytes(4, "little"))
        finally:
            self._buf = bytearray()
            if self._own:
                self._fh.close()

    def _deflate(self) -> list:
        """(deflated block, its CRC-32, its length) of each block, in order."""
        view = memoryview(self._buf)
        starts = list(range(0, len(view), self.BLOCK)) or [0]
        out = [None] * len(starts)
        next_index = iter(range(len(starts))).__next__  # shared by the threads (atomic under the GIL)
        errors = []

        def work():
            try:
                while not errors:  # (a stop on one thread stops the others at their next block)
                    try:
                        i = next_index()
                    except StopIteration:
                        return
                    start = starts[i]
                    out[i] = _deflate_block(view, start, start + self.BLOCK, self._level, i == len(starts) - 1,
                                            self._WINDOW)
            except BaseException as exc:  # re-raised on the calling thread
                errors.append(exc)

        helpers = []
        if self._threads > 1 and len(starts) > 1:
            import threading

            helpers = [threading.Thread(target=work, daemon=True) for _ in range(min(self._threads, len(starts)) - 1)]
            for t in helpers:
                t.start()
        work()
        for t in helpers:
            t.join()
        if errors:
            raise errors[0]
        return out


def _deflate_block(view, start: int, end: int, level: int, last: bool, window: int) -> tuple:
    piece = view[start:end]
    zdict = view[max(0, start - window):start] if start else None
    if level == 1:
        from isal import isal_zlib as z

        level = 3  # ISA-L's fastest setting (see DEFAULT_COMPRESSION)
    else:
        from zlib_ng import zlib_ng as z
    c = z.compressobj(level, z.DEFLATED, -15, z.DEF_MEM_LEVEL, z.Z_DEFAULT_STRATEGY, zdict) if zdict is not None \
        else z.compressobj(level, z.DEFLATED, -15)
    return c.compress(piece) + c.flush(z.Z_FINISH if last else z.Z_SYNC_FLUSH), z.crc32(piece), len(piece)


def _crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    from zlib_ng import zlib_ng

    return zlib_ng.crc32_combine(crc1, crc2, length2)


def read_until(path: str, pattern: bytes, limit: int, complete=None) -> tuple:
    """(bytes read, match or None): the start of a file with a text header, read in growing
    blocks until the regex `pattern` matches (and `complete(match)` holds) or `limit` bytes.

    A missing or unreadable file is a CorruptInput naming the reason.
    """
    import re

    regex = re.compile(pattern, re.MULTILINE)
    with opening(path, CorruptInput), open(path, "rb") as fh:
        blob = fh.read(1 << 16)
        while True:
            match = regex.search(blob)
            if match and (complete is None or complete(match)):
                return blob, match
            more = fh.read(1 << 20) if len(blob) < limit else b""
            if not more:
                return blob, match
            blob += more


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def check_size(path: str, needed: int, available: int, what: str = "voxel data", offset: int = 0,
               compressed: int | None = None) -> None:
    """Refuse to allocate what a header claims when the bytes are not there.

    `needed` and `available` count from the start of the file; the data starts at `offset`, so the
    message counts the data's own bytes. `compressed`: `available` is what that many compressed
    bytes can inflate to at most, and the message says so."""
    if needed < 0 or needed - offset < 0:
        raise CorruptInput(f"header declares a negative {what} size", path)
    if needed > available:
        if compressed is not None:
            raise CorruptInput(f"header declares {needed - offset} bytes of {what}, more than {compressed} "
                               "compressed bytes can hold", path)
        raise CorruptInput(f"header declares {needed - offset} bytes of {what} but only "
                           f"{max(0, available - offset)} are present (truncated?)", path)


#: temporary files being written right now (for the last-resort clean-up after a stop signal)
LIVE_TEMPS: set = set()
#: depth of `uninterrupted` sections, and the stop signal held back while inside one
_HOLD = {"depth": 0, "pending": None}


class _Uninterrupted:
    """A section that a stop signal does not cut in two: creating a temporary file and recording
    it in LIVE_TEMPS, or renaming it into place and forgetting it, happen together or not at all.

    The stop handler (signals.py) calls `hold_signal`; a signal that arrives inside the section is
    raised as KeyboardInterrupt when the outermost section ends."""

    __slots__ = ()

    def __enter__(self):
        _HOLD["depth"] += 1

    def __exit__(self, *exc):
        _HOLD["depth"] -= 1
        if _HOLD["depth"] == 0 and _HOLD["pending"] is not None:
            _HOLD["pending"] = None
            raise KeyboardInterrupt
        return False


uninterrupted = _Uninterrupted()


def hold_signal(signum: int) -> bool:
    """For the stop handler: True when a stop must wait for the current section's end."""
    if _HOLD["depth"] > 0:
        _HOLD["pending"] = signum
        return True
    return False


def discard_temp(tmp: str) -> None:
    """Remove a temporary file (if still there) and forget it."""
    with uninterrupted:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        LIVE_TEMPS.discard(tmp)


def commit_temp(tmp: str, path: str) -> None:
    """Rename a temporary file (from write_temp) into place; on any failure, KeyboardInterrupt
    included, the temporary file is removed."""
    done = False
    try:
        with uninterrupted:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise write_error(exc, path) from None
            done = True
            LIVE_TEMPS.discard(tmp)
    finally:
        if not done:
            discard_temp(tmp)


def forget_parent_state() -> None:
    """In a forked worker: the parent's held signal and temporary files are the parent's, not this
    process's (a fork copies them)."""
    _HOLD.update(depth=0, pending=None)
    LIVE_TEMPS.clear()


def remove_live_temps() -> None:
    """Remove every temporary file still recorded (the end of a run stopped part-way)."""
    for tmp in list(LIVE_TEMPS):
        try:
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.unlink(tmp)
        except OSError:
            pass
        LIVE_TEMPS.discard(tmp)


def make_parent(path: str) -> str:
    """Create the folder `path` goes in when missing (an OutputError naming it if that fails);
    returns the folder."""
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create directory ({exc.strerror})", parent) from None
    return parent


#: flags of a temporary output: created here and now, never through a link, not inherited
_TEMP_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))


def _new_temp(directory: str, mode: int = 0o600) -> tuple:
    """(descriptor, path) of a new empty file `.medconv-XXXXXXXXXXXX.part` in `directory`, by default
    readable by its owner alone (what tempfile.mkstemp makes, without importing tempfile and what it
    imports)."""
    for _ in range(100):
        path = os.path.join(directory, f".medconv-{os.urandom(6).hex()}.part")
        try:
            return os.open(path, _TEMP_FLAGS, mode), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", directory)


@contextlib.contextmanager
def atomic_outputs(paths, force: bool = False, protect=()):
    """Yield temporary paths beside each destination; rename all into place on success.

    Nothing is left behind on failure. An existing destination is refused unless
    `force`; a destination that is one of `protect` (the inputs) is always refused.
    """
    paths = [os.path.abspath(p) for p in paths]
    for p in paths:
        # only an existing file can be an input: compare with the inputs just for those
        if protect and os.path.lexists(p) and any(same_file(p, q) for q in protect):
            raise OutputError("refusing to overwrite an input file", p)
        if os.path.lexists(p) and not force:
            raise OutputError("destination exists (use --force to replace it)", p)
        if os.path.isdir(p):
            raise OutputError("destination is a directory", p)
        make_parent(p)
    temps = []
    try:
        for p in paths:
            with uninterrupted:  # created and tracked as one step: a stop signal waits for both
                try:
                    fd, tmp = _new_temp(os.path.dirname(p))
                except OSError as exc:
                    raise OutputError(f"cannot write here ({exc.strerror})", p) from None
                temps.append(tmp)
                LIVE_TEMPS.add(tmp)
            os.close(fd)
        try:
            yield temps
        except OSError as exc:
            # any failure of the file system while writing (disk full, file-size limit, I/O
            # error, ...) is an output error naming the destination, never a crash
            raise write_error(exc, _destination_of(exc, temps, paths)) from None
        with uninterrupted:  # the set is renamed whole (and forgotten) before a stop is acted on
            for tmp, p in zip(temps, paths):
                try:
                    os.chmod(tmp, 0o644 & ~_umask())
                    os.replace(tmp, p)
                except OSError as exc:
                    raise write_error(exc, p) from None
                LIVE_TEMPS.discard(tmp)
            temps = []
    finally:
        for tmp in temps:
            discard_temp(tmp)


def write_bytes_atomic(path: str, data, force: bool = False, made_dirs: set | None = None) -> None:
    """One file written whole or not at all: a temporary file beside it, renamed into place.

    The lean form of `atomic_outputs` for thousands of small outputs (anonymising a tree):
    one create, one write, one rename. `made_dirs` remembers the folders already created.
    """
    if os.path.lexists(path):
        if os.path.isdir(path):
            raise OutputError("destination is a directory", path)
        if not force:
            raise OutputError("destination exists (use --force to replace it)", path)
    commit_temp(write_temp(os.path.dirname(path) or ".", data, made_dirs, shown=path), path)


def write_temp(folder: str, data, made_dirs: set | None = None, shown: str | None = None) -> str:
    """Write `data` whole to a new hidden temporary file in `folder` (created if needed); its path.

    The caller renames it into place (commit_temp) or removes it (discard_temp); until then it is in
    LIVE_TEMPS, removed at the end of a stopped run. Nothing is left behind on failure here.
    """
    if made_dirs is None or folder not in made_dirs:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create directory ({exc.strerror})", folder) from None
        if made_dirs is not None:
            made_dirs.add(folder)
    with uninterrupted:  # created and tracked as one step
        try:
            fd, tmp = _new_temp(folder, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write here ({exc.strerror})", shown or folder) from None
        LIVE_TEMPS.add(tmp)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except BaseException as exc:  # a stop signal too: nothing is left behind
        discard_temp(tmp)
        if isinstance(exc, OSError):
            raise write_error(exc, shown or tmp) from None
        raise
    return tmp


def errno_of(exc: BaseException):
    """The errno of an OSError, or of the one a library's error wraps in its text: HDF5 (h5py) says
    "... errno = 27, error message = ..." in a RuntimeError, pydicom re-raises an OSError with only
    a message ("With tag ... got exception: [Errno 28] No space left on device" and a traceback)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    import re

    found = re.search(r"errno = (\d+)|\[Errno (\d+)\]", str(exc))
    return int(found.group(1) or found.group(2)) if found else None


def write_error(exc: BaseException, path: str) -> OutputError:
    """The OutputError for an OSError (or a library's error wrapping one) raised while writing `path`."""
    if not isinstance(exc, OSError) or exc.errno is None:
        code = errno_of(exc)
        if code is not None:
            exc = OSError(code, os.strerror(code))
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return OutputError("disk full", path)
        if exc.errno == errno.EFBIG:
            return OutputError("cannot write (File too large: the file-size limit was reached)", path)
        if isinstance(exc, PermissionError):
            return OutputError("permission denied", path)
    return OutputError(f"cannot write ({reason_of(exc)})", path)


def reason_of(exc: BaseException) -> str:
    """Why a write failed, in one bounded line (the strerror of the errno a library's text names)."""
    code = errno_of(exc)
    if code is not None:
        return os.strerror(code)
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    return reason[:200] + "..." if len(reason) > 200 else reason


def _destination_of(exc: OSError, temps, paths) -> str:
    """The destination whose temporary file `exc` concerns (the first one when it does not say)."""
    name = getattr(exc, "filename", None)
    if name:
        for tmp, p in zip(temps, paths):
            if os.path.abspath(os.fspath(name)) == os.path.abspath(tmp):
                return p
    return paths[0]


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


_UMASK = []


def _umask() -> int:
    """The process umask, read once (reading it means setting it; nothing here changes it)."""
    if not _UMASK:
        mask = os.umask(0)
        os.umask(mask)
        _UMASK.append(mask)
    return _UMASK[0]


def strip_gz(path: str) -> tuple:
    """('brain.nii', True) for 'brain.nii.gz'."""
    return (path[:-3], True) if path.lower().endswith(".gz") else (path, False)
