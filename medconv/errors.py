"""Typed errors of the library; the CLI maps each to its exit code (docs/cli.md)."""
from __future__ import annotations

import os


class MedconvError(Exception):
    """Base error: carries the exit code and, optionally, the path it concerns."""

    exit_code = 1

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.message = message
        self.path = os.fspath(path) if path is not None else None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class CheckFailed(MedconvError):
    """A check (diff, anonymize --check) found something: exit 1."""

    exit_code = 1


class UsageError(MedconvError):
    """Bad option or value: exit 2."""

    exit_code = 2


class InputError(MedconvError):
    """Missing, unreadable, unsupported or corrupt input: exit 3."""

    exit_code = 3


class UnsupportedFormat(InputError):
    """Not a format medconv reads (or cannot hold what is asked of it)."""


class CorruptInput(InputError):
    """Recognised format, but broken: say what is broken."""


class MissingDependency(InputError):
    """Recognised format, but a package needed to decode it is not installed."""


class OutputError(MedconvError):
    """Destination exists, not writable, disk full, or cannot hold the volume: exit 4."""

    exit_code = 4


class BatchFailed(MedconvError):
    """Some inputs of a --keep-going batch failed: exit 5."""

    exit_code = 5


class Interrupted(MedconvError):
    """Ctrl-C: exit 130."""

    exit_code = 130


class guard:
    """Context manager: any non-medconv exception raised while decoding `path` becomes CorruptInput.

    Readers raise typed errors for what they recognise; this catches what slips past them (a
    library's own exception type on a mutated file), so bad input never ends in a traceback.
    MemoryError becomes an input error too: a header asked for more than this machine has.
    """

    def __init__(self, path, what: str = "file"):
        self.path, self.what = path, what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, MedconvError) or not isinstance(exc, Exception):
            return False
        if isinstance(exc, MemoryError):
            raise InputError("not enough memory to read this file (does its header claim a huge size?)",
                             self.path) from None
        text = str(exc).replace("\n", " ")
        if len(text) > 200:  # a library's message may quote the file at length
            text = text[:200] + "..."
        raise CorruptInput(f"cannot read this {self.what} ({type(exc).__name__}: {text})", self.path) from None
