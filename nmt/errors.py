"""Errors a user can act on. The CLI prints them as one line, without a traceback."""
from __future__ import annotations


class NmtError(Exception):
    """Base class: `str(error)` is the complete one-line message."""


class LocatedError(NmtError):
    """An error in a file: the message starts with `path:line:` (or `path:`) when they are known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line, self.reason = path, line, message
        super().__init__(_located(message, path, line))


class ConfigError(LocatedError):
    """A recipe or an override is invalid (unknown key, wrong type, bad value)."""


class DataError(LocatedError):
    """A text file is unusable: misaligned, not UTF-8, an empty or over-long line, missing."""


class OutputError(LocatedError):
    """A file or folder cannot be written: read-only, full disk, a file where a folder is needed,
    or a run directory in use by another process."""


class ModelDirError(LocatedError):
    """A model folder is missing, incomplete, corrupt or of an incompatible version."""


def _located(message: str, path: str | None, line: int | None) -> str:
    if path is None:
        return message
    return f"{path}:{line}: {message}" if line is not None else f"{path}: {message}"
